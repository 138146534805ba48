{#-
    The value of `value` at the row where `order_by` is greatest (value_at_max) or least
    (value_at_min), as an aggregate. `value` is a SQL expression; `order_by` a list of SQL
    expressions compared in turn (a tie on the first goes to the second, ...). As DuckDB's
    arg_max / arg_min do: rows whose value is NULL are skipped, and a NULL in an order
    field sorts above every value. On a tie over all of `order_by` the engine picks one:
    put the value itself last in `order_by` when the result must be reproducible.
-#}
{% macro value_at_max(value, order_by) -%}
    {{ return(adapter.dispatch('value_at_max', 'cdp')(value, order_by)) }}
{%- endmacro %}

{% macro default__value_at_max(value, order_by) -%}
    {{ exceptions.raise_compiler_error("cdp: macro value_at_max has no portable implementation for adapter "
        ~ adapter.type() ~ "; write " ~ adapter.type() ~ "__value_at_max (the DuckDB version is "
        ~ "duckdb__value_at_max in macros/cross_db/arg_extreme.sql)") }}
{%- endmacro %}

{#- DuckDB: arg_max, over a row value when the order has several fields. -#}
{% macro duckdb__value_at_max(value, order_by) -%}
    arg_max({{ value }}, {{ order_by[0] if order_by | length == 1 else '(' ~ order_by | join(', ') ~ ')' }})
{%- endmacro %}

{#-
    Spark: max_by. Spark skips a NULL key as DuckDB does, but sorts a NULL struct field below
    every value: several fields become struct(f1 is null, f1, f2 is null, f2, ...), which
    sorts a NULL field above every value, as DuckDB's row value does.
-#}
{% macro spark__value_at_max(value, order_by) -%}
    {%- set key = [] -%}
    {%- for field in order_by -%}
        {%- do key.append(field ~ ' is null, ' ~ field) -%}
    {%- endfor -%}
    max_by({{ value }}, case when {{ value }} is not null then {{ order_by[0] if order_by | length == 1 else 'struct(' ~ key | join(', ') ~ ')' }} end)
{%- endmacro %}

{% macro value_at_min(value, order_by) -%}
    {{ return(adapter.dispatch('value_at_min', 'cdp')(value, order_by)) }}
{%- endmacro %}

{% macro default__value_at_min(value, order_by) -%}
    {{ exceptions.raise_compiler_error("cdp: macro value_at_min has no portable implementation for adapter "
        ~ adapter.type() ~ "; write " ~ adapter.type() ~ "__value_at_min (the DuckDB version is "
        ~ "duckdb__value_at_min in macros/cross_db/arg_extreme.sql)") }}
{%- endmacro %}

{#- DuckDB: arg_min, over a row value when the order has several fields. -#}
{% macro duckdb__value_at_min(value, order_by) -%}
    arg_min({{ value }}, {{ order_by[0] if order_by | length == 1 else '(' ~ order_by | join(', ') ~ ')' }})
{%- endmacro %}

{#- Spark: min_by, the key as in spark__value_at_max. -#}
{% macro spark__value_at_min(value, order_by) -%}
    {%- set key = [] -%}
    {%- for field in order_by -%}
        {%- do key.append(field ~ ' is null, ' ~ field) -%}
    {%- endfor -%}
    min_by({{ value }}, case when {{ value }} is not null then {{ order_by[0] if order_by | length == 1 else 'struct(' ~ key | join(', ') ~ ')' }} end)
{%- endmacro %}

{#-
    Whether `value` is one of the items of the text `text` split at the one-character
    `delimiter` (a Python string), e.g. a channel in 'email;sms'. Empty items count.
-#}
{% macro delimited_list_contains(text, delimiter, value) -%}
    {{ return(adapter.dispatch('delimited_list_contains', 'cdp')(text, delimiter, value)) }}
{%- endmacro %}

{% macro default__delimited_list_contains(text, delimiter, value) -%}
    {{ exceptions.raise_compiler_error("cdp: macro delimited_list_contains has no portable implementation for adapter "
        ~ adapter.type() ~ "; write " ~ adapter.type() ~ "__delimited_list_contains (the DuckDB version is "
        ~ "duckdb__delimited_list_contains in macros/cross_db/arg_extreme.sql)") }}
{%- endmacro %}

{#- DuckDB: list_contains over string_split. -#}
{% macro duckdb__delimited_list_contains(text, delimiter, value) -%}
    list_contains(string_split({{ text }}, '{{ delimiter }}'), {{ value }})
{%- endmacro %}

{#-
    Spark: array_contains over split, whose delimiter is a Java regex (quoted here) and whose
    limit -1 keeps trailing empty items, as string_split does.
-#}
{% macro spark__delimited_list_contains(text, delimiter, value) -%}
    {%- if delimiter | length != 1 or delimiter in "'\\]^-" -%}
        {{ exceptions.raise_compiler_error("cdp: delimited_list_contains takes one character, not a quote, a backslash or ] ^ -, as its delimiter") }}
    {%- endif -%}
    array_contains(split({{ text }}, '[{{ delimiter }}]', -1), {{ value }})
{%- endmacro %}
