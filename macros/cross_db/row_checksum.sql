{#-
    An integer checksum of a row's values: the first 60 bits of its
    row_fingerprint (the md5 both engines compute alike), so a sum of it over
    rows is order-free, changes when any value changes, and is the same number
    on every engine. For comparing a set of rows with a record of it
    (identity_unfold_changed_sources); not a pseudonym: it is unkeyed, so it only
    ever checksums rows of pseudonyms, never raw identifiers.
-#}
{% macro row_checksum(columns) -%}
    {{ return(adapter.dispatch('row_checksum', 'cdp')(columns)) }}
{%- endmacro %}

{% macro default__row_checksum(columns) -%}
    {%- if execute -%}
        {{ exceptions.raise_compiler_error("cdp: row_checksum has no portable implementation for adapter "
            ~ adapter.type() ~ "; write " ~ adapter.type() ~ "__row_checksum (the first 15 hex digits of "
            ~ "row_fingerprint as a bigint; the DuckDB version is in macros/cross_db/row_checksum.sql)") }}
    {%- endif -%}
{%- endmacro %}

{#- DuckDB: the hex digits cast to a bigint (`'0x...'::bigint`). -#}
{% macro duckdb__row_checksum(columns) -%}
    cast('0x' || substr({{ row_fingerprint(columns) }}, 1, 15) as bigint)
{%- endmacro %}

{% macro spark__row_checksum(columns) -%}
    {{ not_ported_to_spark('row_checksum', 'macros/cross_db/row_checksum.sql') }}
{%- endmacro %}
