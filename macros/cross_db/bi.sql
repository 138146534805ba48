{#-
    What the BI marts and their ledgers wrote in DuckDB's dialect, dispatched (decision 83). Each
    duckdb__ version emits the SQL the models had; each spark__ version was checked against it in
    a Spark 4.3 session and DuckDB 2.0 (docs/portability.md, "The BI marts on Spark").
-#}

{#-
    `value` rounded to `places` decimals as DuckDB's round(double, places) does: the value times
    10^places, rounded half away from zero, divided by 10^places (both in double). Spark's round
    rounds the shortest decimal text of the double instead: round(0.575, 2) is 0.58 on Spark and
    0.57 on DuckDB (0.575 * 100 is 57.49999...).
-#}
{% macro round_places(value, places) -%}
    {{ return(adapter.dispatch('round_places', 'cdp')(value, places)) }}
{%- endmacro %}

{% macro default__round_places(value, places) -%}
    round({{ value }}, {{ places }})
{%- endmacro %}

{#- Spark: round without places (half away from zero on the double, as C's round) of the scaled value. -#}
{% macro spark__round_places(value, places) -%}
    {%- if places is not number or places < 0 or places > 9 -%}
        {{ exceptions.raise_compiler_error("round_places: places must be 0..9; got " ~ places) }}
    {%- endif -%}
    (round(cast({{ value }} as double) * {{ 10 ** places }}D) / {{ 10 ** places }}D)
{%- endmacro %}

{#-
    `value` (a double, or a decimal of the same scale) as decimal(precision, scale), a double
    rounded as DuckDB's cast does (times 10^scale, half away from zero). Spark's cast of a double rounds its shortest
    decimal text half up: 0.575 is 0.58 there, 0.57 on DuckDB.
-#}
{% macro decimal_cast(value, precision, scale) -%}
    {{ return(adapter.dispatch('decimal_cast', 'cdp')(value, precision, scale)) }}
{%- endmacro %}

{% macro default__decimal_cast(value, precision, scale) -%}
    cast({{ value }} as decimal({{ precision }}, {{ scale }}))
{%- endmacro %}

{#-
    Spark: through spark__round_places (a double whose shortest text has at most `scale`
    decimals, so Spark's cast keeps it); a decimal below 2^53 / 10^scale comes back the same.
-#}
{% macro spark__decimal_cast(value, precision, scale) -%}
    cast({{ spark__round_places(value, scale) }} as decimal({{ precision }}, {{ scale }}))
{%- endmacro %}

{#-
    A relation of timestamps from `start` (included) to `stop` (excluded) by the interval
    `step`, one column `column`, named `alias`: for a from clause.
-#}
{% macro timestamp_series(start, stop, step, alias, column) -%}
    {{ return(adapter.dispatch('timestamp_series', 'cdp')(start, stop, step, alias, column)) }}
{%- endmacro %}

{% macro default__timestamp_series(start, stop, step, alias, column) -%}
    {{ exceptions.raise_compiler_error("cdp: macro timestamp_series has no portable implementation for adapter "
        ~ adapter.type() ~ "; write " ~ adapter.type() ~ "__timestamp_series (the DuckDB version is "
        ~ "duckdb__timestamp_series in macros/cross_db/bi.sql)") }}
{%- endmacro %}

{#- DuckDB: the table function range over timestamps. -#}
{% macro duckdb__timestamp_series(start, stop, step, alias, column) -%}
    range(
            {{ start }},
            {{ stop }},
            {{ step }}
        ) as {{ alias }} ({{ column }})
{%- endmacro %}

{#- Spark: sequence includes its stop, so it stops one step earlier; exploded into rows. -#}
{% macro spark__timestamp_series(start, stop, step, alias, column) -%}
    (
        select explode(sequence({{ start }}, {{ stop }} - {{ step }}, {{ step }})) as {{ column }}
    ) as {{ alias }}
{%- endmacro %}

{#- The column of the integers 0..n-1 that `from range(n)` gives. -#}
{% macro integer_range_column() -%}
    {{ return(adapter.dispatch('integer_range_column', 'cdp')()) }}
{%- endmacro %}

{% macro default__integer_range_column() -%}
    {{ exceptions.raise_compiler_error("cdp: macro integer_range_column has no portable implementation for adapter "
        ~ adapter.type() ~ "; write " ~ adapter.type() ~ "__integer_range_column (the DuckDB version is "
        ~ "duckdb__integer_range_column in macros/cross_db/bi.sql)") }}
{%- endmacro %}

{% macro duckdb__integer_range_column() -%}
    range
{%- endmacro %}

{% macro spark__integer_range_column() -%}
    id
{%- endmacro %}

{#- The SHA-256 of text `value`, as 64 lowercase hex digits. -#}
{% macro sha256_hex(value) -%}
    {{ return(adapter.dispatch('sha256_hex', 'cdp')(value)) }}
{%- endmacro %}

{% macro default__sha256_hex(value) -%}
    {{ exceptions.raise_compiler_error("cdp: macro sha256_hex has no portable implementation for adapter "
        ~ adapter.type() ~ "; write " ~ adapter.type() ~ "__sha256_hex (the DuckDB version is "
        ~ "duckdb__sha256_hex in macros/cross_db/bi.sql)") }}
{%- endmacro %}

{% macro duckdb__sha256_hex(value) -%}
    sha256({{ value }})
{%- endmacro %}

{% macro spark__sha256_hex(value) -%}
    sha2({{ value }}, 256)
{%- endmacro %}

{#- The integer whose hex digits are the text `value` (a few digits: an int). -#}
{% macro hex_to_integer(value) -%}
    {{ return(adapter.dispatch('hex_to_integer', 'cdp')(value)) }}
{%- endmacro %}

{% macro default__hex_to_integer(value) -%}
    {{ exceptions.raise_compiler_error("cdp: macro hex_to_integer has no portable implementation for adapter "
        ~ adapter.type() ~ "; write " ~ adapter.type() ~ "__hex_to_integer (the DuckDB version is "
        ~ "duckdb__hex_to_integer in macros/cross_db/bi.sql)") }}
{%- endmacro %}

{% macro duckdb__hex_to_integer(value) -%}
    cast(('0x' || {{ value }}) as integer)
{%- endmacro %}

{% macro spark__hex_to_integer(value) -%}
    cast(conv({{ value }}, 16, 10) as int)
{%- endmacro %}

{#-
    The texts `value` of a group joined by `separator` (SQL of a text literal) in the order of
    `order_by` (SQL); NULL values are skipped, as an aggregate. Each argument is SQL text, put
    in as it is (line breaks included).
-#}
{% macro ordered_text_agg(value, separator, order_by) -%}
    {{ return(adapter.dispatch('ordered_text_agg', 'cdp')(value, separator, order_by)) }}
{%- endmacro %}

{% macro default__ordered_text_agg(value, separator, order_by) -%}
    {{ exceptions.raise_compiler_error("cdp: macro ordered_text_agg has no portable implementation for adapter "
        ~ adapter.type() ~ "; write " ~ adapter.type() ~ "__ordered_text_agg (the DuckDB version is "
        ~ "duckdb__ordered_text_agg in macros/cross_db/bi.sql)") }}
{%- endmacro %}

{% macro duckdb__ordered_text_agg(value, separator, order_by) -%}
    string_agg({{ value }}, {{ separator }} order by {{ order_by }})
{%- endmacro %}

{#- Spark 4: string_agg with WITHIN GROUP (it skips NULLs as DuckDB's does). -#}
{% macro spark__ordered_text_agg(value, separator, order_by) -%}
    string_agg({{ value }}, {{ separator }}) within group (order by {{ order_by }})
{%- endmacro %}
