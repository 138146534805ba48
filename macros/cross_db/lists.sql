{#-
    Lists (arrays) of text, which the engines spell differently (issue 19): DuckDB's
    list functions and `varchar[]`, Spark's arrays. Each duckdb__ version is the SQL the
    profile wrote before the port; each spark__ version was checked against it in a Spark 4.3
    session (docs/portability.md, "Rights and the profile on Spark").
-#}

{#- The type of a list of text, for casts. -#}
{% macro text_list_type() -%}
    {{ return(adapter.dispatch('text_list_type', 'cdp')()) }}
{%- endmacro %}

{% macro default__text_list_type() -%}
    {{ exceptions.raise_compiler_error("cdp: macro text_list_type has no portable implementation for adapter "
        ~ adapter.type() ~ "; write " ~ adapter.type() ~ "__text_list_type (the DuckDB version is "
        ~ "duckdb__text_list_type in macros/cross_db/lists.sql)") }}
{%- endmacro %}

{% macro duckdb__text_list_type() -%}
    varchar[]
{%- endmacro %}

{% macro spark__text_list_type() -%}
    array<string>
{%- endmacro %}

{#- The empty list, typed by what it is combined with (coalesce). -#}
{% macro empty_list() -%}
    {{ return(adapter.dispatch('empty_list', 'cdp')()) }}
{%- endmacro %}

{% macro default__empty_list() -%}
    {{ exceptions.raise_compiler_error("cdp: macro empty_list has no portable implementation for adapter "
        ~ adapter.type() ~ "; write " ~ adapter.type() ~ "__empty_list (the DuckDB version is "
        ~ "duckdb__empty_list in macros/cross_db/lists.sql)") }}
{%- endmacro %}

{% macro duckdb__empty_list() -%}
    []
{%- endmacro %}

{% macro spark__empty_list() -%}
    array()
{%- endmacro %}

{#-
    Whether the list `list` holds `value`. For lists without NULL items (with one, an absent
    value gives false on DuckDB and NULL on Spark).
-#}
{% macro list_has(list, value) -%}
    {{ return(adapter.dispatch('list_has', 'cdp')(list, value)) }}
{%- endmacro %}

{% macro default__list_has(list, value) -%}
    {{ exceptions.raise_compiler_error("cdp: macro list_has has no portable implementation for adapter "
        ~ adapter.type() ~ "; write " ~ adapter.type() ~ "__list_has (the DuckDB version is "
        ~ "duckdb__list_has in macros/cross_db/lists.sql)") }}
{%- endmacro %}

{% macro duckdb__list_has(list, value) -%}
    list_contains({{ list }}, {{ value }})
{%- endmacro %}

{% macro spark__list_has(list, value) -%}
    array_contains({{ list }}, {{ value }})
{%- endmacro %}

{#-
    An aggregate: the values of `value` in the group (of the rows where `where` holds, when
    given), sorted ascending, NULL values included and last; NULL when no row counts.
-#}
{% macro sorted_list(value, where=none) -%}
    {{ return(adapter.dispatch('sorted_list', 'cdp')(value, where)) }}
{%- endmacro %}

{% macro default__sorted_list(value, where=none) -%}
    {{ exceptions.raise_compiler_error("cdp: macro sorted_list has no portable implementation for adapter "
        ~ adapter.type() ~ "; write " ~ adapter.type() ~ "__sorted_list (the DuckDB version is "
        ~ "duckdb__sorted_list in macros/cross_db/lists.sql)") }}
{%- endmacro %}

{#- DuckDB: list(... order by ...), with the aggregate FILTER clause. -#}
{% macro duckdb__sorted_list(value, where=none) -%}
    list({{ value }} order by {{ value }}){% if where is not none %} filter (where {{ where }}){% endif %}
{%- endmacro %}

{#-
    Spark: collect_list drops NULL items and gives [] for no row, so it collects structs (a
    NULL value in a struct that is not NULL), sorts them with the NULL values last, and keeps
    the value; the case gives NULL when no row counts, as DuckDB's list does.
-#}
{% macro spark__sorted_list(value, where=none) -%}
    {%- set counted = 'true' if where is none else where -%}
    case when count_if({{ counted }}) > 0 then transform(
        array_sort(collect_list(case when {{ counted }} then struct({{ value }} is null as is_null, {{ value }} as item) end)),
        entry -> entry.item
    ) end
{%- endmacro %}

{#-
    An aggregate: the value of `value` in the group's first row in the order `order_by`, a
    list of SQL expressions each optionally followed by ` asc` or ` desc`, NULL last in both
    directions (DuckDB's default). The row's value even when it is NULL. Put a unique field
    last when the result must be reproducible.
-#}
{% macro value_at_first(value, order_by) -%}
    {{ return(adapter.dispatch('value_at_first', 'cdp')(value, order_by)) }}
{%- endmacro %}

{% macro default__value_at_first(value, order_by) -%}
    {{ exceptions.raise_compiler_error("cdp: macro value_at_first has no portable implementation for adapter "
        ~ adapter.type() ~ "; write " ~ adapter.type() ~ "__value_at_first (the DuckDB version is "
        ~ "duckdb__value_at_first in macros/cross_db/lists.sql)") }}
{%- endmacro %}

{#- DuckDB: first(... order by ...). -#}
{% macro duckdb__value_at_first(value, order_by) -%}
    first({{ value }} order by {{ order_by | join(', ') }})
{%- endmacro %}

{#-
    Spark: min_by over struct(f is null, f, ...): a NULL field last, as DuckDB orders it; a
    descending field is negated, so it must be a number (write a text field ascending only).
    min_by keeps the value of the least key, NULL or not.
-#}
{% macro spark__value_at_first(value, order_by) -%}
    {%- set key = [] -%}
    {%- for item in order_by -%}
        {%- set words = item.strip().split(' ') -%}
        {%- set direction = words[-1] | lower if words | length > 1 and words[-1] | lower in ('asc', 'desc') else 'asc' -%}
        {%- set field = (words[:-1] | join(' ')) if words | length > 1 and words[-1] | lower in ('asc', 'desc') else item.strip() -%}
        {%- do key.append(field ~ ' is null, ' ~ ('-(' ~ field ~ ')' if direction == 'desc' else field)) -%}
    {%- endfor -%}
    min_by({{ value }}, struct({{ key | join(', ') }}))
{%- endmacro %}
