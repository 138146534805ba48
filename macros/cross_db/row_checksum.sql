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

{#-
    Spark: the same 15 hex digits through conv() (base 16 to 10, as text), the
    same number as a decimal(20, 0): Spark's sum of a bigint stays a bigint and
    overflows (an error under ANSI mode) where DuckDB's sums into a HUGEINT;
    the sum of a decimal(20, 0) is a decimal(30, 0) that holds any realistic sum.
-#}
{% macro spark__row_checksum(columns) -%}
    cast(conv(substr({{ row_fingerprint(columns) }}, 1, 15), 16, 10) as decimal(20, 0))
{%- endmacro %}
