{{ config(materialized='table', schema='bi') }}

{#-
    Customer segments for BI: people per age band, region and RFM segment, with
    their orders and RUB revenue, plus a total row per age band and region
    (rfm_segment '(all)'). People in the customer profile who also consented to
    analytics. The RFM segment is the sensitive attribute: an age band and
    region whose visible cells show fewer than l segments is suppressed whole
    (l-diversity), on top of k-anonymity and secondary suppression.
-#}
with analytics_persons as (

    select * from {{ ref('int_bi__analytics_persons') }}

),

customer_profile as (

    select * from {{ ref('dim_customer_profile') }}

),

persons as (

    select
        analytics_persons.age_band,
        analytics_persons.region,
        customer_profile.rfm_segment,
        {{ dp_clamp('customer_profile.order_count', var('dp_max_orders_per_cell', 10)) }} as order_count,
        {{ dp_clamp('coalesce(customer_profile.revenue_rub, 0)', var('dp_max_revenue_rub_per_cell', 100000)) }}
            as revenue_rub
    from analytics_persons
    inner join customer_profile
        on analytics_persons.person_key = customer_profile.person_key

),

cells as (

    select
        age_band,
        region,
        rfm_segment,
        count(*) as customer_count,
        sum(order_count) as order_count,
        sum(revenue_rub) as revenue_rub
    from persons
    group by all

),

{{ k_anonymise('cells', ['age_band', 'region'], 'rfm_segment', 'customer_count', ['order_count', 'revenue_rub'],
    totals=true, l_diverse=true,
    sensitivity={'customer_count': 1, 'order_count': var('dp_max_orders_per_cell', 10),
                 'revenue_rub': var('dp_max_revenue_rub_per_cell', 100000)}) }},

final as (

    select
        cast(age_band as varchar) as age_band,
        cast(region as varchar) as region,
        cast(rfm_segment as varchar) as rfm_segment,
        cast(is_total as boolean) as is_total,
        cast(customer_count as bigint) as customer_count,
        cast(round(order_count) as bigint) as order_count,
        cast(revenue_rub as decimal(18, 2)) as revenue_rub,
        cast(is_suppressed as boolean) as is_suppressed,
        cast({{ as_of() }} as timestamp) as as_of
    from cells__published

)

select * from final
