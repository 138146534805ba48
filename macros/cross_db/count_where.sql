{#-
    The number of rows for which `condition` (a boolean SQL expression) is
    true: an aggregate, also usable as a window function (`... over (...)`).
    Over a non-empty group or window both versions give the same number; over
    an empty group the portable one gives null instead of 0.
-#}
{% macro count_where(condition) -%}
    {{ return(adapter.dispatch('count_where', 'cdp')(condition)) }}
{%- endmacro %}

{#- Any engine: a case inside sum (the aggregate FILTER clause is missing in Spark windows and Snowflake). -#}
{% macro default__count_where(condition) -%}
    sum(case when {{ condition }} then 1 else 0 end)
{%- endmacro %}

{#- DuckDB: the aggregate FILTER clause. -#}
{% macro duckdb__count_where(condition) -%}
    count(*) filter (where {{ condition }})
{%- endmacro %}
