{{ config(tags=['privacy', 'vault_stage']) }}
{#-
    Plain (unkeyed) hashes of emails and phones are reversible by dictionary:
    no string value of any relation the build writes (every database attached
    but the raw zone: the warehouse and the vault) may hold md5 or sha256 of a
    normalised email or phone from the raw zone, as the whole value or after a
    prefix such as `v1_`. It scans every table and view there at test time (not
    only dbt's own), so a relation created by hand is caught too. It runs last:
    in the vault stage, after the privacy and analytics stages, and after the
    vault models below (`cdp build` adds it to every build that writes models;
    docs/decisions.md, 61).

    Cheap by construction: the plain hashes are computed once (one set, md5
    and sha256 of every distinct identifier), and each string value of 32
    characters or more is probed once, by its last 32 characters, against the
    md5s and the last 32 characters of the sha256s; a sha256 candidate is then
    confirmed on its last 64 characters (one probe per value instead of two:
    2.5x faster at 100k customers, docs/decisions.md 67). A VARCHAR column
    gives its values; a column of lists, structs or JSON gives every run of 32
    or more hex digits of its text form. The last characters are taken with
    `substr(value, -n)`: the same characters as `right(value, n)`, cheaper. A
    view is executed by every read, so the text columns of a scanned view are
    read in one pass (an `unnest` of its columns), not once per column: at
    1,000,000 customers the ten reads of int_identity_person_edges took 25 of
    the scan's 61 seconds (docs/decisions.md, 102). A view is not scanned when it is a
    plain selection of relations the scan covers (every output expression a
    column reference or `*`, every relation read a table or view of the same
    database, no table function or VALUES list): its values are values of those
    relations, so scanning it again would re-execute it for nothing. Any other
    view (one that computes, casts or aggregates, or reads the raw zone or
    another database), or one DuckDB cannot parse back, is scanned.
-#}
-- depends_on: {{ ref('vault_identifiers') }}
-- depends_on: {{ ref('vault_customer_names') }}
-- depends_on: {{ ref('channels') }}
{%- set landing_databases = [] -%}
{%- for node in landing_sources() -%}
    {%- if node.database and node.database not in landing_databases -%}
        {%- do landing_databases.append(node.database) -%}
    {%- endif -%}
{%- endfor -%}
{%- set columns_sql -%}
    with written_databases as (

        select database_name
        from duckdb_databases()
        where not internal
            and database_name not in ('system', 'temp'
                {%- for name in landing_databases %}, '{{ name }}'{% endfor %})

    ),

    views as (

        select
            database_name,
            schema_name,
            view_name,
            json_serialize_sql(
                regexp_replace(sql, '^CREATE (OR REPLACE )?VIEW .*? AS ', '')
            ) as tree
        from duckdb_views()
        where not internal
            and database_name in (select database_name from written_databases)

    ),

    view_nodes as (

        select
            views.database_name,
            views.schema_name,
            views.view_name,
            node.id,
            node.parent,
            node.key,
            node.atom,
            node.fullkey
        from views, json_tree(views.tree) as node

    ),

    view_ctes as (

        select database_name, schema_name, view_name, atom ->> '$' as cte_name
        from view_nodes
        where key = 'key' and fullkey like '%.cte_map.map[%].key'

    ),

    table_refs as (

        select
            refs.database_name,
            refs.schema_name,
            refs.view_name,
            max(case when fields.key = 'catalog_name' then fields.atom ->> '$' end) as ref_catalog,
            max(case when fields.key = 'schema_name' then fields.atom ->> '$' end) as ref_schema,
            max(case when fields.key = 'table_name' then fields.atom ->> '$' end) as ref_table
        from view_nodes as refs
        inner join view_nodes as fields
            on refs.database_name = fields.database_name
                and refs.schema_name = fields.schema_name
                and refs.view_name = fields.view_name
                and refs.parent = fields.parent
        where refs.key = 'type' and refs.atom ->> '$' = 'BASE_TABLE'
        group by refs.database_name, refs.schema_name, refs.view_name, refs.parent

    ),

    known_relations as (

        select table_catalog, table_schema, table_name
        from information_schema.tables
        where table_catalog in (select database_name from written_databases)

    ),

    computing_views as (

        -- DuckDB could not parse the view back
        select database_name, schema_name, view_name
        from views
        where coalesce(tree ->> '$.error', 'true') <> 'false'
        union
        -- an output expression that is not a column reference or `*`
        select database_name, schema_name, view_name
        from view_nodes
        where key = 'class'
            and fullkey like '%.select_list[%'
            and atom ->> '$' not in ('COLUMN_REF', 'STAR')
        union
        -- a relation that makes rows of its own
        select database_name, schema_name, view_name
        from view_nodes
        where key = 'type'
            and atom ->> '$' in (
                'TABLE_FUNCTION', 'EXPRESSION_LIST', 'PIVOT', 'SHOW_REF', 'COLUMN_DATA'
            )
        union
        -- a relation read that is neither one of its CTEs nor one of the same database
        select table_refs.database_name, table_refs.schema_name, table_refs.view_name
        from table_refs
        where not (
            coalesce(table_refs.ref_schema, '') = ''
            and coalesce(table_refs.ref_catalog, '') = ''
            and exists (
                select 1 from view_ctes
                where view_ctes.database_name = table_refs.database_name
                    and view_ctes.schema_name = table_refs.schema_name
                    and view_ctes.view_name = table_refs.view_name
                    and view_ctes.cte_name = table_refs.ref_table
            )
        )
        and not (
            coalesce(table_refs.ref_catalog, '') in ('', table_refs.database_name)
            and coalesce(table_refs.ref_schema, '') <> ''
            and table_refs.ref_schema not in (select database_name from duckdb_databases())
            and exists (
                select 1 from known_relations
                where known_relations.table_catalog = table_refs.database_name
                    and known_relations.table_schema = table_refs.ref_schema
                    and known_relations.table_name = table_refs.ref_table
            )
        )

    ),

    plain_views as (

        select database_name, schema_name, view_name from views
        except
        select database_name, schema_name, view_name from computing_views

    )

    select
        columns.table_catalog,
        columns.table_schema,
        columns.table_name,
        columns.column_name,
        columns.data_type = 'VARCHAR' as is_text,
        coalesce(relations.table_type = 'VIEW', false) as is_view
    from information_schema.columns as columns
    left join information_schema.tables as relations
        on columns.table_catalog = relations.table_catalog
            and columns.table_schema = relations.table_schema
            and columns.table_name = relations.table_name
    where columns.table_catalog in (select database_name from written_databases)
        and columns.table_schema not in ('information_schema', 'pg_catalog')
        and (
            columns.data_type like '%VARCHAR%'
            or columns.data_type like '%JSON%'
        )
        and not exists (
            select 1 from plain_views
            where plain_views.database_name = columns.table_catalog
                and plain_views.schema_name = columns.table_schema
                and plain_views.view_name = columns.table_name
        )
    order by 1, 2, 3, 4
{%- endset -%}
{%- set string_columns = run_query(columns_sql).rows if execute else [] -%}

{#-
    Every e-mail and phone of the landing zone, from the sources' meta, whatever the vault seals
    (`vault: false` too): a column of one identifier type (identifier_type); a recipient typed
    by its channel (identifier_type_by_channel) and a subject typed by a column of its row
    (identifier_type_column), an unknown type counted as both; and each field a JSON column
    marks direct (json_fields), as both. A value that is neither is refused by both normalisers,
    so gathering too much costs little and misses nothing. Each distinct raw value is normalised
    once, whichever columns hold it.
-#}
{%- set gathered = {'email': [], 'phone': []} -%}
{%- for node in landing_sources() -%}
    {%- set relation = landing_relation(node) -%}
    {%- for column in landing_columns(node) -%}
        {%- set meta = column.meta -%}
        {%- set name = column.name -%}
        {%- for id_type in gathered -%}
            {%- if meta.get('identifier_type') == id_type -%}
                {%- do gathered[id_type].append(
                    'select cast(' ~ name ~ ' as varchar) as raw_value from ' ~ relation) -%}
            {%- elif meta.get('identifier_type_by_channel') -%}
                {%- do gathered[id_type].append(
                    'select cast(' ~ name ~ ' as varchar) as raw_value from ' ~ relation
                    ~ ' where coalesce(' ~ recipient_type(meta['identifier_type_by_channel'])
                    ~ ", '" ~ id_type ~ "') = '" ~ id_type ~ "'") -%}
            {%- elif meta.get('identifier_type_column') -%}
                {%- do gathered[id_type].append(
                    'select cast(' ~ name ~ ' as varchar) as raw_value from ' ~ relation
                    ~ ' where coalesce(' ~ clean_id_type(meta['identifier_type_column'])
                    ~ ", '" ~ id_type ~ "') = '" ~ id_type ~ "'") -%}
            {%- endif -%}
            {%- for field, pii in (meta.get('json_fields') or {}).items() if pii == 'direct' -%}
                {%- do gathered[id_type].append(
                    'select case when ' ~ json_is_valid(name) ~ ' then '
                    ~ json_extract_text(name, '$.' ~ field) ~ ' end as raw_value from ' ~ relation) -%}
            {%- endfor -%}
        {%- endfor -%}
    {%- endfor -%}
{%- endfor -%}
{%- set distinct_values = {} -%}
{%- for id_type, branches in gathered.items() -%}
    {%- set union_sql -%}
        select cast(null as varchar) as raw_value
        where false
        {%- for branch in branches %}
        union
        {{ branch }}
        {%- endfor %}
    {%- endset -%}
    {%- do distinct_values.update({id_type: union_sql}) -%}
{%- endfor %}
with emails as (

    select distinct {{ normalise_email('raw_value') }} as identifier
    from ({{ distinct_values['email'] }}
    ) as distinct_values

),

phones as (

    select distinct {{ normalise_phone('raw_value') }} as identifier
    from ({{ distinct_values['phone'] }}
    ) as distinct_values

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

{#- Each plain hash by its last 32 characters (the whole of an md5). -#}
plain_hashes as (

    select md5(identifier) as hash_tail, md5(identifier) as plain_hash from identifiers
    union
    select right(sha256(identifier), 32) as hash_tail, sha256(identifier) as plain_hash
    from identifiers

),

{#- Every value of 32 characters or more (an md5 or a sha256, whole or after a prefix). -#}
{%- set branches = [] -%}
{%- set view_columns = {} -%}
{%- for catalog_name, schema_name, table_name, column_name, is_text, is_view in string_columns -%}
    {#- Names are quoted as DuckDB reads them back: a name may hold any character. -#}
    {%- set relation -%}
        "{{ catalog_name | replace('"', '""') }}"."{{ schema_name | replace('"', '""') }}"."{{ table_name | replace('"', '""') }}"
    {%- endset -%}
    {%- set column = '"' ~ (column_name | replace('"', '""')) ~ '"' -%}
    {%- set path = "'" ~ ((catalog_name ~ '.' ~ schema_name ~ '.' ~ table_name ~ '.' ~ column_name) | replace("'", "''")) ~ "'" -%}
    {%- if is_text and is_view -%}
        {#- A view is executed by every read: its text columns are read in one pass below. -#}
        {%- do view_columns.setdefault(relation, []).append((path, column)) -%}
    {%- elif is_text -%}
        {%- set branch -%}
        select
            {{ path }} as column_path,
            {{ column }} as column_value
        from {{ relation }}
        where length({{ column }}) >= 32
        {%- endset -%}
        {%- do branches.append(branch) -%}
    {%- else -%}
        {%- set branch -%}
        select
            {{ path }} as column_path,
            hex_run as column_value
        from (
            select unnest(regexp_extract_all(
                cast({{ column }} as varchar), '[0-9a-fA-F]{32,}'
            )) as hex_run
            from {{ relation }}
        ) as hex_runs
        where length(hex_run) >= 32
        {%- endset -%}
        {%- do branches.append(branch) -%}
    {%- endif -%}
{%- endfor -%}
{%- for relation, columns in view_columns.items() -%}
    {%- set branch -%}
        select
            view_values.column_path,
            view_values.column_value
        from (
            select
                unnest([{% for path, column in columns %}{{ path }}{% if not loop.last %}, {% endif %}{% endfor %}]) as column_path,
                unnest([{% for path, column in columns %}{{ column }}{% if not loop.last %}, {% endif %}{% endfor %}]) as column_value
            from {{ relation }}
        ) as view_values
        where length(view_values.column_value) >= 32
    {%- endset -%}
    {%- do branches.append(branch) -%}
{%- endfor %}
column_values as (
    {% for branch in branches %}
        {{ branch }}
        {% if not loop.last %}union all{% endif %}
    {% else %}
        select
            null as column_path,
            null as column_value
        where false
    {% endfor %}

)

select
    column_values.column_path,
    count(*) as matching_values
from column_values
inner join plain_hashes
    on lower(substr(column_values.column_value, -32)) = plain_hashes.hash_tail
where length(plain_hashes.plain_hash) = 32
    or lower(substr(column_values.column_value, -64)) = plain_hashes.plain_hash
group by column_values.column_path
