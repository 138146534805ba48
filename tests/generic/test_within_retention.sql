{#-
    Retention: no row of the model is older than its data category's window
    (seed data_categories.retention_days) as of `as_of`. A row whose retention
    time is null has no end yet (an open consent interval) and passes; list the
    column in the model's not_null_columns test where a null would be an error.

    Settings, from the model's meta unless given as test arguments:
      data_category           the category of every row, or
      data_category_column    a column naming each row's category (mixed models)
      retention_time_column   the column the window runs from
    Returns one row per violation with the row's category, time and the cut-off.
-#}
{% test within_retention(model, data_category=none, data_category_column=none, retention_time_column=none) %}
{%- set meta = model_meta_of(model) -%}
{%- set identifier = '^[A-Za-z_][A-Za-z0-9_]*$' -%}
{%- set category_column = checked_setting(data_category_column or meta.get('data_category_column'),
    'data_category_column', identifier, model, required=false) -%}
{%- set category = checked_setting(data_category or meta.get('data_category'), 'data_category',
    '^[a-z][a-z0-9_]*$', model, required=(category_column is none)) -%}
{%- set time_column = checked_setting(retention_time_column or meta.get('retention_time_column'),
    'retention_time_column', identifier, model) -%}
{%- set categories = ref('data_categories') -%}

with data_categories as (

    select * from {{ categories }}

),

model_rows as (

    select
        {{ category_column if category_column else ("'" ~ (category or '') ~ "'") }} as data_category,
        cast({{ time_column or 'null' }} as timestamp) as retained_since
    from {{ model }}

),

violations as (

    select
        model_rows.data_category,
        model_rows.retained_since,
        {{ retention_cutoff('data_categories.retention_days') }} as retention_cutoff,
        case
            when data_categories.data_category is null then 'data category is not in the catalogue'
            else 'older than the retention window'
        end as violation
    from model_rows
    left join data_categories
        on model_rows.data_category = data_categories.data_category
    where
        data_categories.data_category is null
        or model_rows.retained_since < {{ retention_cutoff('data_categories.retention_days') }}

)

select * from violations

{% endtest %}
