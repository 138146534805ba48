{#-
    Identifier types of the identity graph.

    Strong identifiers (CRM customer id, e-mail, phone, loyalty card) name a
    person and form the graph whose connected components are persons. Device
    identifiers (cookie / app anonymous id, push token) name a device, which
    people share: they attach to the one person their logins point to and never
    join two persons.
-#}
{% macro identity_device_id_types() -%}
    {{ return(adapter.dispatch('identity_device_id_types', 'cdp')()) }}
{%- endmacro %}

{% macro default__identity_device_id_types() -%}
    ('anonymous_id', 'push_token')
{%- endmacro %}

{#-
    Preference among identifiers that were first seen at the same moment: a
    person's anchor (the identifier its person key is derived from) is the
    earliest identifier, ties going to the CRM record first.
-#}
{% macro identity_id_type_rank(id_type) -%}
    {{ return(adapter.dispatch('identity_id_type_rank', 'cdp')(id_type)) }}
{%- endmacro %}

{% macro default__identity_id_type_rank(id_type) -%}
    case {{ id_type }}
        when 'customer_id' then 1
        when 'loyalty_card' then 2
        when 'email' then 3
        when 'phone' then 4
        when 'push_token' then 5
        when 'anonymous_id' then 6
        else 9
    end
{%- endmacro %}

{#-
    An aggregate that summarises a set of identifier pseudonyms (the accepted
    neighbours of an identifier): equal sets give equal signatures, different
    sets differ except with negligible probability. Order-independent.
-#}
{% macro identity_set_signature(column) -%}
    {{ return(adapter.dispatch('identity_set_signature', 'cdp')(column)) }}
{%- endmacro %}

{#- Any engine: the hash of the sorted, joined values (dbt's cross-database listagg and hash). -#}
{% macro default__identity_set_signature(column) -%}
    {{ dbt.hash(dbt.listagg(column, "','", "order by " ~ column)) }}
{%- endmacro %}

{#- DuckDB: the count and the xor of 64-bit hashes; ten times cheaper than sorting the strings. -#}
{% macro duckdb__identity_set_signature(column) -%}
    cast(count({{ column }}) as varchar) || ':' || cast(bit_xor(hash({{ column }})) as varchar)
{%- endmacro %}

{#- Spark: the md5 of the sorted values joined by commas (dbt-spark's listagg takes no order). -#}
{% macro spark__identity_set_signature(column) -%}
    md5(array_join(array_sort(collect_list({{ column }})), ','))
{%- endmacro %}

{#-
    The aggregate `value` of the row with the earliest `seen_at` (an unknown
    time last), ties going to the smallest `value`: an edge's first record.
-#}
{% macro identity_earliest(value, seen_at) -%}
    {{ return(adapter.dispatch('identity_earliest', 'cdp')(value, seen_at)) }}
{%- endmacro %}

{% macro default__identity_earliest(value, seen_at) -%}
    {%- if execute -%}
        {{ exceptions.raise_compiler_error("cdp: macro identity_earliest has no portable implementation for adapter "
            ~ adapter.type() ~ "; write " ~ adapter.type() ~ "__identity_earliest (the DuckDB version is "
            ~ "duckdb__identity_earliest in macros/identity/identity_types.sql)") }}
    {%- endif -%}
{%- endmacro %}

{#-
    DuckDB: the least of (time, value) spelled as one text, the time first as 20 digits that
    sort as it does (microseconds since 1970 plus 2^63; an unknown time and infinity after every
    time, minus infinity before), the value after: the value of the least is the value wanted.
    The same order as `arg_min(value, (coalesce(seen_at, timestamp 'infinity'), value))` (a NULL
    value skipped by both), which it replaced: with arg_min over a tuple int_identity_edges at
    1,000,000 customers (11.3 M pairs) ran out of its 6 GB memory limit, where `min` over a text
    spills to disk and fits (docs/decisions.md 101).
-#}
{% macro duckdb__identity_earliest(value, seen_at) -%}
    substr(min(
        case
            when {{ seen_at }} is null or {{ seen_at }} = timestamp 'infinity' then repeat('~', 20)
            when {{ seen_at }} = timestamp '-infinity' then repeat('!', 20)
            else lpad(cast(cast(epoch_us({{ seen_at }}) as hugeint) + 9223372036854775808 as varchar), 20, '0')
        end || cast({{ value }} as varchar)
    ), 21)
{%- endmacro %}

{#-
    Spark: min_by over the struct (time unknown, time, value); Spark has no
    infinite timestamp, and `true` sorts after `false` as infinity after any time.
-#}
{% macro spark__identity_earliest(value, seen_at) -%}
    min_by({{ value }}, struct({{ seen_at }} is null, {{ seen_at }}, {{ value }}))
{%- endmacro %}

{#- The aggregate of the distinct non-null texts of `column`, sorted, joined by commas. -#}
{% macro identity_sorted_distinct_list(column) -%}
    {{ return(adapter.dispatch('identity_sorted_distinct_list', 'cdp')(column)) }}
{%- endmacro %}

{% macro default__identity_sorted_distinct_list(column) -%}
    {%- if execute -%}
        {{ exceptions.raise_compiler_error("cdp: macro identity_sorted_distinct_list has no portable implementation for adapter "
            ~ adapter.type() ~ "; write " ~ adapter.type() ~ "__identity_sorted_distinct_list (the DuckDB version is "
            ~ "duckdb__identity_sorted_distinct_list in macros/identity/identity_types.sql)") }}
    {%- endif -%}
{%- endmacro %}

{#- DuckDB: string_agg with distinct and an order. -#}
{% macro duckdb__identity_sorted_distinct_list(column) -%}
    string_agg(distinct {{ column }}, ',' order by {{ column }})
{%- endmacro %}

{#- Spark: the sorted set joined (an empty group gives null, as string_agg does). -#}
{% macro spark__identity_sorted_distinct_list(column) -%}
    nullif(array_join(array_sort(collect_set({{ column }})), ','), '')
{%- endmacro %}
