{#-
    The spark__ version of a macro that is not ported to Spark yet (issue 19): it stops the
    compilation of any node that uses it, naming the macro and its DuckDB version, but only
    when dbt executes (compiles a selected node), not while it parses the whole project. So
    the project parses on Spark and the ported part builds; nothing unported runs on guesses.
-#}
{% macro not_ported_to_spark(name, duckdb_file) -%}
    {{ return(adapter.dispatch('not_ported_to_spark', 'cdp')(name, duckdb_file)) }}
{%- endmacro %}

{% macro default__not_ported_to_spark(name, duckdb_file) -%}
    {%- if execute -%}
        {{ exceptions.raise_compiler_error(
            "cdp: macro " ~ name ~ " is not ported to Spark yet (the DuckDB version is duckdb__"
            ~ name ~ " in " ~ duckdb_file ~ "; docs/portability.md, Spark)") }}
    {%- endif -%}
{%- endmacro %}
