{{ config(materialized='table', schema='bi') }}

{#-
    Cohort retention for BI: people grouped by the month of their first order
    (within the purchase-history window, with analytics consent), and for each
    of the 12 months after it how many of them ordered again. A cohort of
    fewer than k people is suppressed whole; a month with fewer than k active
    people is suppressed; suppressed cells are left out. Active counts of one cohort are not additive, but
    the cohorts' active counts of one calendar month add up to the buyers of
    bi_sales_by_region_month: the publish audit checks that relation across
    marts (decision 43). The cohort size is the perturbed count of month 0
    (the same people, so the same cell key and the same noise).
-#}
{{- reject_removed_disclosure_vars() -}}
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
        count(*) as cohort_size,
        {{ cell_key('person_key', 0) }} as cohort_size__key
    from first_orders
    group by cohort_month

),

cells as (

    select
        cohort_month,
        months_since_first,
        count(*) as active_customers,
        {{ cell_key('person_key', 0) }} as active_customers__key
    from activity
    where months_since_first between 0 and 12
    group by all

),

{{ k_anonymise('cells', ['cohort_month'], 'months_since_first', 'active_customers', [], secondary=false) }},

published_cohorts as (

    select
        cohort_month,
        case
            when cohort_size >= {{ k_anonymity_k() }}
                then {{ perturb_count('cohort_size', 'cohort_size__key', k_anonymity_k()) }}
        end as cohort_size
    from cohorts

),

joined as (

    select
        cells__published.cohort_month,
        cells__published.months_since_first,
        published_cohorts.cohort_size,
        -- an active count above its (perturbed) cohort is brought down to it: retention stays in [0, 1]
        case
            when published_cohorts.cohort_size is not null and not cells__published.is_suppressed
                then least(cells__published.active_customers, published_cohorts.cohort_size)
        end as active_customers,
        cells__published.is_suppressed or published_cohorts.cohort_size is null as is_suppressed
    from cells__published
    inner join published_cohorts
        on cells__published.cohort_month = published_cohorts.cohort_month

),

final as (

    select
        cast(cohort_month as date) as cohort_month,
        cast(months_since_first as integer) as months_since_first,
        cast(cohort_size as bigint) as cohort_size,
        cast(active_customers as bigint) as active_customers,
        cast(round(active_customers / cohort_size, 4) as double) as retention_rate,
        cast(is_suppressed as boolean) as is_suppressed,
        cast({{ as_of() }} as timestamp) as as_of
    from joined
    -- A suppressed cell is left out, not shown empty: its row alone would tell that at least one
    -- person is in it, which, added up against the sales mart's month, narrows it (decision 43).
    where {{ 'true' if 'suppressed_rows_shown' in disclosure_weakened() else 'not is_suppressed' }}

)

select * from final
