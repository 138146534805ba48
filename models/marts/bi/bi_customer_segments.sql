{{ enforced_contract() }}

{#-
    Customer segments for BI: people per age band, region and RFM segment, with
    their orders and RUB revenue, plus a total row per age band and region
    (rfm_segment '(all)'). People in the customer profile who also consented to
    analytics. The RFM segment is the sensitive attribute: an age band and
    region whose visible cells show fewer than l segments is suppressed whole,
    and its total too when its people hold fewer than l segments (l-diversity
    of totals), on top of k-anonymity and secondary suppression; what is
    published is perturbed by the cell key method (decision 42).
-#}
{{- reject_removed_disclosure_vars() -}}
with analytics_persons as (

    select * from {{ ref('int_bi__analytics_persons') }}

),

customer_profile as (

    select * from {{ ref('dim_customer_profile') }}

),

persons as (

    select
        analytics_persons.person_key,
        analytics_persons.age_band,
        analytics_persons.region,
        customer_profile.rfm_segment,
        customer_profile.order_count,
        coalesce(customer_profile.revenue_rub, 0) as revenue_rub
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
        {{ cell_key('person_key', 0) }} as customer_count__key,
        sum(order_count) as order_count,
        {{ cell_key('person_key', 1) }} as order_count__key,
        sum(revenue_rub) as revenue_rub,
        {{ cell_key('person_key', 2) }} as revenue_rub__key
    from persons
    group by all

),

{{ k_anonymise('cells', ['age_band', 'region'], 'rfm_segment', 'customer_count', ['order_count', 'revenue_rub'],
    totals=true, l_diverse=true) }},

final as (

    select
        cast(age_band as {{ text_type() }}) as age_band,
        cast(region as {{ text_type() }}) as region,
        cast(rfm_segment as {{ text_type() }}) as rfm_segment,
        cast(is_total as boolean) as is_total,
        cast(customer_count as bigint) as customer_count,
        cast(round(order_count) as bigint) as order_count,
        {{ decimal_cast('revenue_rub', 18, 2) }} as revenue_rub,
        cast(is_suppressed as boolean) as is_suppressed,
        cast({{ as_of() }} as timestamp) as as_of
    from cells__published

)

select * from final
