{{ enforced_contract() }}

{#-
    Cohort retention for BI: people grouped by the month of their first order
    (within the purchase-history window, with analytics consent), and for each
    of the 12 months after it how many of them ordered again. A cohort of
    fewer than k people is suppressed whole; a month with fewer than k active
    people is suppressed; suppressed cells are left out. Active counts of one cohort are not additive, but
    the cohorts' active counts of one calendar month add up to the buyers of
    bi_sales_by_region_month: the publish audit checks that relation across
    marts (decision 43), and the sales mart withholds a month's total where it
    would pin this mart's left-out cells of that month (decision 52; the cells
    are defined once, in macros/disclosure/cohort.sql, for both marts). The
    cohort size is the perturbed count of month 0 (the same people, so the
    same cell key and the same noise).
-#}
{{- reject_removed_disclosure_vars() -}}
with analytics_events as {{ inline_cte() }} (

    select * from {{ ref('int_bi__analytics_events') }}

),

orders as (

    select
        person_key,
        {{ month_of('event_at') }} as order_month
    from analytics_events
    where event_source = 'order' and event_type not in ('cancelled', 'returned')

),

{{ cohort_cells('orders') }},

{{ k_anonymise('cohort_cells', ['cohort_month'], 'months_since_first', 'active_customers', [], secondary=false) }},

published_cohorts as (

    select
        cohort_month,
        case
            when cohort_size >= {{ k_anonymity_k() }}
                then {{ perturb_count('cohort_size', 'cohort_size__key', k_anonymity_k()) }}
        end as cohort_size
    from cohort_sizes

),

joined as (

    select
        cohort_cells__published.cohort_month,
        cohort_cells__published.months_since_first,
        published_cohorts.cohort_size,
        -- an active count above its (perturbed) cohort is brought down to it: retention stays in [0, 1]
        case
            when published_cohorts.cohort_size is not null and not cohort_cells__published.is_suppressed
                then least(cohort_cells__published.active_customers, published_cohorts.cohort_size)
        end as active_customers,
        cohort_cells__published.is_suppressed or published_cohorts.cohort_size is null as is_suppressed
    from cohort_cells__published
    inner join published_cohorts
        on cohort_cells__published.cohort_month = published_cohorts.cohort_month

),

final as (

    select
        cast(cohort_month as date) as cohort_month,
        cast(months_since_first as integer) as months_since_first,
        cast(cohort_size as bigint) as cohort_size,
        cast(active_customers as bigint) as active_customers,
        cast({{ round_places('active_customers / cohort_size', 4) }} as double) as retention_rate,
        cast(is_suppressed as boolean) as is_suppressed,
        cast({{ as_of() }} as timestamp) as as_of
    from joined
    -- A suppressed cell is left out, not shown empty: its row alone would tell that at least one
    -- person is in it, which, added up against the sales mart's month, narrows it (decision 43).
    where {{ 'true' if 'suppressed_rows_shown' in disclosure_weakened() else 'not is_suppressed' }}

)

select * from final
