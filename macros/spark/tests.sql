{#-
    What the project's data tests (tests/**) wrote for DuckDB alone (issue 19, decision 87).
    Each duckdb__ version gives the text the tests had before the port (their compiled SQL on
    DuckDB is unchanged); each spark__ version runs in the Spark build's dbt build
    (docs/portability.md, "Data tests on Spark").
-#}

{#-
    A join item: one row per value of the list of SQL expressions `values` (each row of the
    left side joined to each of them, NULL values included) as `alias`.`column`.
-#}
{% macro cross_join_values(values, alias, column) -%}
    {{ return(adapter.dispatch('cross_join_values', 'cdp')(values, alias, column)) }}
{%- endmacro %}

{% macro default__cross_join_values(values, alias, column) -%}
    {{ exceptions.raise_compiler_error("cdp: macro cross_join_values has no portable implementation for adapter "
        ~ adapter.type() ~ "; write " ~ adapter.type() ~ "__cross_join_values (the DuckDB version is "
        ~ "duckdb__cross_join_values in macros/spark/tests.sql)") }}
{%- endmacro %}

{#- DuckDB: unnest over a list literal. -#}
{% macro duckdb__cross_join_values(values, alias, column) -%}
    cross join unnest([{{ values | join(', ') }}]) as {{ alias }} ({{ column }})
{%- endmacro %}

{#- Spark: explode over an array, laterally (explode keeps a NULL item of a list that is not NULL). -#}
{% macro spark__cross_join_values(values, alias, column) -%}
    cross join lateral explode(array({{ values | join(', ') }})) as {{ alias }} ({{ column }})
{%- endmacro %}
