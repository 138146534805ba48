{{ config(tags=['privacy']) }}
{#-
    The catalogue is complete: every data category a purpose lists has a
    retention period (seed data_categories), and every period is positive.
-#}
with purposes as (

    select * from {{ ref('purposes') }}

),

data_categories as {{ inline_cte() }} (

    select * from {{ ref('data_categories') }}

),

listed_categories as (

    select
        purposes.purpose_code,
        trim(listed.data_category) as data_category
    from purposes
    {{ cross_join_split('purposes.data_categories', ';', 'listed', 'data_category') }}

),

final as (

    select
        listed_categories.purpose_code,
        listed_categories.data_category,
        'data category has no retention period' as problem
    from listed_categories
    left join data_categories
        on listed_categories.data_category = data_categories.data_category
    where data_categories.data_category is null
    union all
    select
        null as purpose_code,
        data_category,
        'retention period is not positive' as problem
    from data_categories
    where retention_days is null or retention_days <= 0

)

select * from final
