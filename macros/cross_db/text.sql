{#- The SQL type of text, for casts (`cast(null as {{ text_type() }})`): Spark refuses a varchar without a length. -#}
{% macro text_type() -%}
    {{ return(adapter.dispatch('text_type', 'cdp')()) }}
{%- endmacro %}

{% macro default__text_type() -%}
    {{ dbt.type_string() }}
{%- endmacro %}

{% macro duckdb__text_type() -%}
    varchar
{%- endmacro %}

{% macro spark__text_type() -%}
    string
{%- endmacro %}

{#- Whether text `value` starts with `prefix` (both SQL expressions). NULL in, NULL out. -#}
{% macro text_starts_with(value, prefix) -%}
    {{ return(adapter.dispatch('text_starts_with', 'cdp')(value, prefix)) }}
{%- endmacro %}

{#- DuckDB, Trino, Snowflake (startswith also): starts_with. -#}
{% macro default__text_starts_with(value, prefix) -%}
    starts_with({{ value }}, {{ prefix }})
{%- endmacro %}

{#- Spark: startswith (Spark has no starts_with). -#}
{% macro spark__text_starts_with(value, prefix) -%}
    startswith({{ value }}, {{ prefix }})
{%- endmacro %}
