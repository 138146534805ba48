{#-
    JSON text read by the staging models (subject-request details, web event properties).

    DuckDB's reader is lenient in its own way: it accepts trailing commas, NaN and Infinity and
    duplicate keys, and refuses text after the value. No Spark builtin reads JSON the same way
    (try_parse_json and get_json_object refuse the first three and accept the last: measured,
    docs/portability.md "The project on Spark"). So on Spark both functions are DuckDB's own,
    called by a Python UDF (cdp.spark_json, registered by cdp.spark_stage): the same engine
    decides on both, value for value.
-#}

{#- Whether `value` is JSON as DuckDB reads it: true or false, never NULL (NULL in, false out). -#}
{% macro json_is_valid(value) -%}
    {{ return(adapter.dispatch('json_is_valid', 'cdp')(value)) }}
{%- endmacro %}

{% macro default__json_is_valid(value) -%}
    {{ exceptions.raise_compiler_error("cdp: macro json_is_valid has no portable implementation for adapter "
        ~ adapter.type() ~ "; write " ~ adapter.type() ~ "__json_is_valid (the DuckDB version is "
        ~ "duckdb__json_is_valid in macros/cross_db/json.sql)") }}
{%- endmacro %}

{% macro duckdb__json_is_valid(value) -%}
    coalesce(try(json_valid({{ value }})), false)
{%- endmacro %}

{#- Spark: DuckDB's json_valid through cdp_json_valid, an Arrow UDF (a batch per statement: cdp.spark_json). -#}
{% macro spark__json_is_valid(value) -%}
    coalesce(cdp_json_valid({{ value }}), false)
{%- endmacro %}

{#-
    The text at `path` (a constant JSONPath such as '$.field') of valid JSON `value`: a string
    unquoted, any other value as JSON text, NULL for a JSON null or a missing key. Call it only
    on text json_is_valid accepts (DuckDB raises on other text; write it inside a CASE).
-#}
{% macro json_extract_text(value, path) -%}
    {{ return(adapter.dispatch('json_extract_text', 'cdp')(value, path)) }}
{%- endmacro %}

{% macro default__json_extract_text(value, path) -%}
    {{ exceptions.raise_compiler_error("cdp: macro json_extract_text has no portable implementation for adapter "
        ~ adapter.type() ~ "; write " ~ adapter.type() ~ "__json_extract_text (the DuckDB version is "
        ~ "duckdb__json_extract_text in macros/cross_db/json.sql)") }}
{%- endmacro %}

{% macro duckdb__json_extract_text(value, path) -%}
    json_extract_string({{ value }}, '{{ path }}')
{%- endmacro %}

{#-
    Spark: DuckDB's json_extract_string through the Python UDF cdp_json_extract_string, which
    returns NULL for text DuckDB does not read as JSON (Spark evaluates a Python UDF on every
    row, whatever CASE surrounds it).
-#}
{% macro spark__json_extract_text(value, path) -%}
    cdp_json_extract_string({{ value }}, '{{ path }}')
{%- endmacro %}
