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
