{#-
    Not null, for several columns of one model in one scan: what dbt's not_null
    test checks for one column, one test node for the list instead of one per
    column (decision 79). Returns one row per listed column that holds NULL:
    the column's name and how many rows hold NULL there.

    Portable: count(*) - count(column) is each column's NULL count in a single
    aggregate over the model, and a union of constants (no second scan) turns
    that one row into a row per column.
-#}
{% test not_null_columns(model, column_names) %}
{%- if column_names is string or column_names is mapping or not column_names -%}
    {{ exceptions.raise_compiler_error(
        "not_null_columns on " ~ model ~ ": `column_names` must be a non-empty list of columns") }}
{%- endif -%}
{%- set columns = [] -%}
{%- for column_name in column_names -%}
    {%- do columns.append(checked_setting(column_name, 'column_names', '^[A-Za-z_][A-Za-z0-9_]*$', model)) -%}
{%- endfor -%}
{%- if columns | unique | list | length != columns | length -%}
    {{ exceptions.raise_compiler_error(
        "not_null_columns on " ~ model ~ ": a column is listed twice in " ~ (columns | tojson)) }}
{%- endif %}

with null_counts as (

    select
        {%- for column in columns %}
        count(*) - count({{ column }}) as null_rows_{{ loop.index }}{{ ',' if not loop.last }}
        {%- endfor %}
    from {{ model }}

),

checked_columns as (
    {%- for column in columns %}

    select
        {{ loop.index }} as column_position,
        '{{ column }}' as column_name
    {{ 'union all' if not loop.last }}
    {%- endfor %}

),

per_column as (

    select
        checked_columns.column_name,
        case checked_columns.column_position
            {%- for column in columns %}
            when {{ loop.index }} then null_counts.null_rows_{{ loop.index }}
            {%- endfor %}
        end as null_rows
    from checked_columns
    cross join null_counts

)

select
    column_name,
    null_rows
from per_column
where null_rows > 0

{% endtest %}
