{#-
    Cohort cells, and the calendar months whose sales total would pin them
    (docs/decisions.md, 52). Two marts count the same buyers: the cohorts'
    active buyers of one calendar month add up to that month's buyers in
    bi_sales_by_region_month (exactly while every buyer's first order is at
    most 12 months back). The cohort mart leaves its small cells out; where the
    people they hold are too few (or their cells too close to k - 1) for the
    sales mart's total to leave them a range of at least the protection level,
    the sales mart withholds that total. One definition of a cohort cell for
    both marts, here.
-#}

{#- The months after the first order that bi_cohort_retention shows (cdp.disclosure_audit.COHORT_MONTHS). -#}
{% macro cohort_months() -%}
    {{ return(adapter.dispatch('cohort_months', 'cdp')()) }}
{%- endmacro %}

{% macro default__cohort_months() -%}
    {{ return(12) }}
{%- endmacro %}

{#-
    cohort_cells(orders) renders the CTEs `cohort_first_orders` (person_key,
    cohort_month), `cohort_activity`, `cohort_sizes` (cohort_month,
    cohort_size, cohort_size__key) and `cohort_cells` (cohort_month,
    months_since_first 0..12, active_customers, active_customers__key) from
    `orders`, a relation with person_key and order_month (first day of the
    month) of every counted order. Call it between other CTEs, after a comma.
-#}
{% macro cohort_cells(orders) -%}
    {{ return(adapter.dispatch('cohort_cells', 'cdp')(orders)) }}
{%- endmacro %}

{% macro default__cohort_cells(orders) -%}
cohort_first_orders as (

    select
        person_key,
        min(order_month) as cohort_month
    from {{ orders }}
    group by person_key

),

cohort_activity as (

    select distinct
        cohort_first_orders.cohort_month,
        {{ orders }}.person_key,
        {{ dbt.datediff('cohort_first_orders.cohort_month', orders ~ '.order_month', 'month') }} as months_since_first
    from {{ orders }}
    inner join cohort_first_orders
        on {{ orders }}.person_key = cohort_first_orders.person_key

),

cohort_sizes as (

    select
        cohort_month,
        count(*) as cohort_size,
        {{ cell_key('person_key', 0) }} as cohort_size__key
    from cohort_first_orders
    group by cohort_month

),

cohort_cells as (

    select
        cohort_month,
        months_since_first,
        count(*) as active_customers,
        {{ cell_key('person_key', 0) }} as active_customers__key
    from cohort_activity
    where months_since_first between 0 and {{ cohort_months() }}
    group by cohort_month, months_since_first

)
{%- endmacro %}

{#-
    cohort_withheld_months(orders) renders cohort_cells(orders) and then
    `cohort_withheld_months` (order_month, is_total_withheld): one row per
    calendar month with an order. In each calendar month (a column of the
    cohort table) the cells bi_cohort_retention leaves out are those of a
    cohort below k or with fewer than k active people, and every cell of the
    table's grid that has nobody (a BI user cannot tell an empty cell from a
    small one). With the sales mart's total published, those cells together
    hold its buyers minus the shown cells: R people. Even if every published
    number were exact (the perturbation can line up so that it adds no slack,
    for some master key), a left-out cell ranges over
      min(k - 1, R) - max(0, R - (h - 1) * (k - 1))     (h left-out cells)
    when the month is counted whole by the cohorts (the sum is R exactly), and
    over min(k - 1, R) otherwise (the cohorts count only part of its buyers:
    the sum is at most R). Below the protection level, the month's total is
    withheld. Calendar months without a buyer are not counted in h (fewer
    left-out cells, a narrower range: on the safe side). The weakening
    totals_without_cohort_protection (attack tests only) withholds nothing.
-#}
{% macro cohort_withheld_months(orders) -%}
    {{ return(adapter.dispatch('cohort_withheld_months', 'cdp')(orders)) }}
{%- endmacro %}

{% macro default__cohort_withheld_months(orders) -%}
{%- set k = k_anonymity_k() -%}
{%- set most = k - 1 -%}
{{ cohort_cells(orders) }},

cohort_calendar as (

    select
        order_month,
        count(distinct person_key) as buyers
    from {{ orders }}
    group by order_month

),

cohort_grid as (

    select
        cohorts.order_month as cohort_month,
        calendar.order_month,
        {{ dbt.datediff('cohorts.order_month', 'calendar.order_month', 'month') }} as months_since_first
    from cohort_calendar as cohorts
    inner join cohort_calendar as calendar
        on {{ dbt.datediff('cohorts.order_month', 'calendar.order_month', 'month') }}
        between 0 and {{ cohort_months() }}

),

cohort_grid_cells as (

    select
        cohort_grid.order_month,
        coalesce(cohort_cells.active_customers, 0) as active_customers,
        coalesce(cohort_sizes.cohort_size, 0) >= {{ k }}
        and coalesce(cohort_cells.active_customers, 0) >= {{ k }} as is_shown
    from cohort_grid
    left join cohort_cells
        on
            cohort_grid.cohort_month = cohort_cells.cohort_month
            and cohort_grid.months_since_first = cohort_cells.months_since_first
    left join cohort_sizes
        on cohort_grid.cohort_month = cohort_sizes.cohort_month

),

cohort_columns as (

    select
        cohort_calendar.order_month,
        {{ dbt.datediff('(select min(order_month) from cohort_calendar)', 'cohort_calendar.order_month', 'month') }}
        <= {{ cohort_months() }} as is_counted_whole,
        {{ count_where('not cohort_grid_cells.is_shown') }} as hidden_cells,
        cohort_calendar.buyers
        - coalesce(sum(case when cohort_grid_cells.is_shown then cohort_grid_cells.active_customers end), 0)
            as hidden_people
    from cohort_calendar
    inner join cohort_grid_cells
        on cohort_calendar.order_month = cohort_grid_cells.order_month
    group by cohort_calendar.order_month, cohort_calendar.buyers

),

cohort_withheld_months as (

    select
        order_month,
        {%- if 'totals_without_cohort_protection' in disclosure_weakened() %}
        false as is_total_withheld
        {%- else %}
        hidden_cells > 0
        and (
            least({{ most }}, hidden_people)
            - case
                when is_counted_whole then greatest(0, hidden_people - (hidden_cells - 1) * {{ most }})
                else 0
            end
        ) < {{ suppression_protection_level() }} as is_total_withheld
        {%- endif %}
    from cohort_columns

)
{%- endmacro %}
