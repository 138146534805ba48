{{ config(tags=['privacy', 'vault_stage']) }}
{#-
    Plain (unkeyed) hashes of emails and phones are reversible by dictionary:
    no string column of any warehouse relation may hold md5 or sha256 of a
    normalised email or phone from the raw zone, as the whole value or after a
    prefix such as `v1_`. Scans every table and view the warehouse holds at
    test time (not only dbt's own), so a relation created by hand is caught too.
-#}
{%- set columns_sql -%}
    select table_schema, table_name, column_name
    from information_schema.columns
    where table_catalog = current_database()
        and data_type = 'VARCHAR'
        and table_schema not in ('information_schema', 'pg_catalog')
    order by table_schema, table_name, column_name
{%- endset -%}
{%- set string_columns = run_query(columns_sql).rows if execute else [] -%}

{%- set typed_columns = {'email': [], 'phone': []} -%}
{%- for node, column, id_type in landing_identifier_columns() if id_type in typed_columns -%}
    {%- do typed_columns[id_type].append((node, column)) -%}
{%- endfor %}

-- Every landing column of e-mails and of phones (the sources' meta: identifier_type).
with emails as (

    {%- for node, column in typed_columns['email'] %}
    {% if not loop.first %}union{% endif %}
    select distinct {{ normalise_email(column) }} as identifier
    from (select distinct {{ column }} from {{ landing_relation(node) }}) as distinct_values
    {%- else %}
    select cast(null as varchar) as identifier
    where false
    {%- endfor %}

),

phones as (

    {%- for node, column in typed_columns['phone'] %}
    {% if not loop.first %}union{% endif %}
    select distinct {{ normalise_phone(column) }} as identifier
    from (select distinct {{ column }} from {{ landing_relation(node) }}) as distinct_values
    {%- else %}
    select cast(null as varchar) as identifier
    where false
    {%- endfor %}

),

identifiers as (

    select identifier from emails
    where identifier is not null
    union
    select identifier from phones
    where identifier is not null
    union
    select ltrim(identifier, '+') as identifier from phones
    where identifier is not null

),

plain_hashes as (

    select md5(identifier) as plain_hash from identifiers
    union
    select sha256(identifier) as plain_hash from identifiers

),

column_values as (

    {% for schema_name, table_name, column_name in string_columns %}
        select
            '{{ schema_name }}.{{ table_name }}.{{ column_name }}' as column_path,
            lower(regexp_extract("{{ column_name }}", '([0-9a-fA-F]{32,64})$', 1)) as hex_value
        from "{{ schema_name }}"."{{ table_name }}"
        {% if not loop.last %}union all{% endif %}
    {% else %}
        select
            null as column_path,
            null as hex_value
        where false
    {% endfor %}

)

select
    column_values.column_path,
    count(*) as matching_values
from column_values
inner join plain_hashes
    on column_values.hex_value = plain_hashes.plain_hash
group by column_values.column_path
