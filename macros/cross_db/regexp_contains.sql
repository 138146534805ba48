{#-
    Whether `pattern` matches somewhere in `value` (a partial match; anchor it with ^ and $
    for a whole-value match). NULL in, NULL out.

    DuckDB: regexp_matches (RE2). Spark: regexp (Java's find). The two read `$` differently:
    RE2 matches it only at the very end, Java also before a final line break ('AB\n' would
    match '^[A-Z]{2}$'), so on Spark a final `$` becomes `\z` (the very end in Java).
-#}
{% macro regexp_contains(value, pattern) -%}
    {{ return(adapter.dispatch('regexp_contains', 'cdp')(value, pattern)) }}
{%- endmacro %}

{% macro default__regexp_contains(value, pattern) -%}
    {{ value }} ~ '{{ pattern }}'
{%- endmacro %}

{% macro duckdb__regexp_contains(value, pattern) -%}
    regexp_matches({{ value }}, '{{ pattern }}')
{%- endmacro %}

{#- Spark reads a backslash in a string literal as an escape: each is doubled, so the regex sees it. -#}
{% macro spark__regexp_contains(value, pattern) -%}
    {%- set java = pattern[:-1] ~ '\\z' if pattern.endswith('$') and not pattern.endswith('\\$') else pattern -%}
    regexp({{ value }}, '{{ java | replace('\\', '\\\\') }}')
{%- endmacro %}

{#-
    Whether a regular expression matches the whole value; NULL in, NULL out.

    DuckDB: regexp_full_match (RE2). Spark: regexp (Java's find) over the pattern anchored
    as `^(?:pattern)\z` (`\z`: the very end; Java's `$` also matches before a final line
    break). Without the anchors Spark would answer a partial match, silently.
-#}
{% macro regexp_full_match(value, pattern) -%}
    {{ return(adapter.dispatch('regexp_full_match', 'cdp')(value, pattern)) }}
{%- endmacro %}

{% macro default__regexp_full_match(value, pattern) -%}
    {{ value }} ~ '^(?:{{ pattern }})$'
{%- endmacro %}

{% macro duckdb__regexp_full_match(value, pattern) -%}
    regexp_full_match({{ value }}, '{{ pattern }}')
{%- endmacro %}

{% macro spark__regexp_full_match(value, pattern) -%}
    regexp({{ value }}, '^(?:{{ pattern | replace('\\', '\\\\') }})\\z')
{%- endmacro %}
