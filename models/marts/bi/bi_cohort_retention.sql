{{ config(materialized='table', schema='bi') }}

{#-
    Cohort retention for BI: people grouped by the month of their first order
    (within the purchase-history window, with analytics consent), and for each
    of the 12 months after it how many of them ordered again. A cohort of
    fewer than k people is suppressed whole; a month with fewer than k active
    people is suppressed. Active counts of one cohort are not additive, so no
    total can give a suppressed cell away.
-#}
with analytics_events as (

    select * from {{ ref('int_bi__analytics_events') }}

),

orders as (

    select
        person_key,
        {{ month_of('event_at') }} as order_month
    from analytics_events
    where event_source = 'order' and event_type not in ('cancelled', 'returned')

),

first_orders as (

    select
        person_key,
        min(order_month) as cohort_month
    from orders
    group by person_key

),

activity as (

    select distinct
        first_orders.cohort_month,
        orders.person_key,
        date_diff('month', first_orders.cohort_month, orders.order_month) as months_since_first
    from orders
    inner join first_orders
        on orders.person_key = first_orders.person_key

),

cohorts as (

    select
        cohort_month,
        count(*) as cohort_size
    from first_orders
    group by cohort_month

),

cells as (

    select
        cohort_month,
        months_since_first,
        count(*) as active_customers
    from activity
    where months_since_first between 0 and 12
    group by all

),

{{ k_anonymise('cells', ['cohort_month'], 'months_since_first', 'active_customers', [], secondary=false,
    sensitivity={'active_customers': 1}) }},

final as (

    select
        cast(cells__published.cohort_month as date) as cohort_month,
        cast(cells__published.months_since_first as integer) as months_since_first,
        cast(case when cohorts.cohort_size >= {{ k_anonymity_k() }} then cohorts.cohort_size end as bigint)
            as cohort_size,
        cast(
            case when cohorts.cohort_size >= {{ k_anonymity_k() }} then cells__published.active_customers end
            as bigint
        ) as active_customers,
        cast(case
            when cohorts.cohort_size >= {{ k_anonymity_k() }}
                then round(cells__published.active_customers / cohorts.cohort_size, 4)
        end as double) as retention_rate,
        cast(cells__published.is_suppressed or cohorts.cohort_size < {{ k_anonymity_k() }} as boolean)
            as is_suppressed,
        cast({{ as_of() }} as timestamp) as as_of
    from cells__published
    inner join cohorts
        on cells__published.cohort_month = cohorts.cohort_month

)

select * from final
