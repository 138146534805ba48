{{ enforced_contract() }}

{#-
    Sales by region and month for BI: people who bought, orders and RUB revenue
    per order month and region, plus a total row per month (region '(all)').
    Orders that were not cancelled or returned, of people with analytics consent
    (int_bi__analytics_events). Every cell holds at least k people or is
    suppressed, with secondary suppression against the month total; what is
    published is perturbed by the cell key method (decision 42). A month's
    total is withheld where it would pin the cohort cells that
    bi_cohort_retention leaves out of that calendar month (their buyers are
    this month's buyers), with secondary suppression of its regions as for a
    small cell (decision 52).
-#}
{{- reject_removed_disclosure_vars() -}}
with analytics_events as {{ inline_cte() }} (

    select * from {{ ref('int_bi__analytics_events') }}

),

orders as (

    select
        person_key,
        region,
        {{ month_of('event_at') }} as order_month,
        order_amount,
        order_currency
    from analytics_events
    where event_source = 'order' and event_type not in ('cancelled', 'returned')

),

person_months as (

    select
        order_month,
        region,
        person_key,
        count(*) as order_count,
        coalesce(sum(order_amount) filter (where order_currency = 'RUB'), 0) as revenue_rub
    from orders
    group by all

),

{{ cohort_withheld_months('orders') }},

cells as (

    select
        person_months.order_month,
        person_months.region,
        coalesce(cohort_withheld_months.is_total_withheld, false) as is_total_withheld,
        count(*) as customer_count,
        {{ cell_key('person_months.person_key', 0) }} as customer_count__key,
        sum(person_months.order_count) as order_count,
        {{ cell_key('person_months.person_key', 1) }} as order_count__key,
        sum(person_months.revenue_rub) as revenue_rub,
        {{ cell_key('person_months.person_key', 2) }} as revenue_rub__key
    from person_months
    left join cohort_withheld_months
        on person_months.order_month = cohort_withheld_months.order_month
    group by all

),

{{ k_anonymise('cells', ['order_month'], 'region', 'customer_count', ['order_count', 'revenue_rub'], totals=true,
    withheld_total='is_total_withheld') }},

final as (

    select
        cast(order_month as date) as order_month,
        cast(region as {{ text_type() }}) as region,
        cast(is_total as boolean) as is_total,
        cast(customer_count as bigint) as customer_count,
        cast(round(order_count) as bigint) as order_count,
        {{ decimal_cast('revenue_rub', 18, 2) }} as revenue_rub,
        {{ decimal_cast(round_places('revenue_rub / nullif(round(order_count), 0)', 2), 18, 2) }} as average_order_value_rub,
        cast(is_suppressed as boolean) as is_suppressed,
        cast({{ as_of() }} as timestamp) as as_of
    from cells__published

)

select * from final
