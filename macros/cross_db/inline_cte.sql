{#-
    Written between a CTE's name and `as (`'s parenthesis: `name as {{ inline_cte() }} (`.
    Asks the engine to run the CTE's query for each of its readers instead of
    holding its result: for a CTE over a large table whose readers each need a
    few columns or a few rows (a column's distinct values, the rows of shared
    triage groups). DuckDB and PostgreSQL materialise a CTE read more than once
    unless told `not materialized`; an engine without the clause gets nothing.
-#}
{% macro inline_cte() -%}
    {{ return(adapter.dispatch('inline_cte', 'cdp')()) }}
{%- endmacro %}

{% macro default__inline_cte() -%}
{%- endmacro %}

{% macro duckdb__inline_cte() -%}
    not materialized
{%- endmacro %}

{% macro postgres__inline_cte() -%}
    not materialized
{%- endmacro %}

{#-
    Written between a CTE's name and `as (`'s parenthesis: `name as {{ materialized_cte() }} (`.
    Asks the engine to compute the CTE once and hold its result (DuckDB would otherwise push
    a filter of its reader into each branch and run the Python normalisers again). An
    engine without the clause gets nothing and decides for itself (Spark: `materialized`
    is no keyword there and fails the statement).
-#}
{% macro materialized_cte() -%}
    {{ return(adapter.dispatch('materialized_cte', 'cdp')()) }}
{%- endmacro %}

{% macro default__materialized_cte() -%}
{%- endmacro %}

{% macro duckdb__materialized_cte() -%}
    materialized
{%- endmacro %}
