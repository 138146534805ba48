{#-
    The source side of the staging recipe (docs/decisions.md, 56): every triaged
    model starts with triage_source and ends with triage_scope_markers. In a table
    build they are the raw table and nothing; the raw tables staged incrementally
    (web events, message events, order lines, consent events, CRM customers,
    orders) triage again only what changed, as follows.

    The landing zone is append-only by batch, except that the purge destroys rows
    and rewrites some in place. So a batch whose raw row count differs from the
    number of rows staged from it has changed: it is new, or the purge took rows
    from it. (Triage gives every raw row exactly one staged row, so the counts are
    equal for an unchanged batch.) A table the purge rewrites in place (the sources'
    metadata says which) also has each batch's content checksum recorded after every
    run: a batch whose checksum differs was rewritten (docs/decisions.md, 65).

    A triage *group* is the set of rows the triage compares with each other: the
    rows sharing a normalised key; rows with no usable key are quarantined on their
    own and are grouped by key and batch. An incremental run:

      1. finds the changed batches (`triage_changed_batches`);
      2. takes every group with a raw or staged row in them (`triage_scope`);
      3. triages every raw row of those groups again, and nothing else;
      4. replaces the staged rows of those groups by the new ones (the `regroup`
         incremental strategy), so that a group the purge emptied disappears.

    Groups outside the scope have the same raw rows as at the last run, so their
    staged rows are what a full refresh would give. Changing the triage rules or
    the reference data they read (accepted values, the purposes catalogue) needs
    `dbt build --full-refresh`; a new key version already demands one (plugin).
-#}

{#-
    The CTEs `triage_scope`, `source` and `triage_rows` of a triaged model: `source`
    is the raw table, or in an incremental run only the raw rows of the groups to
    triage again; `triage_rows` is `source` with `_triage_shared`, true when the
    row shares its group with another raw row of `source` (or lacks part of the
    key), which triage_fingerprint and the triage read: only those rows are
    fingerprinted and sorted (docs/decisions.md, 60). The model normalises
    `triage_rows` and reads `source` for the distinct values it looks up (a
    column scan of the raw table in a full build, not held in memory).

    source_relation  the raw table, source('...', '...')
    group_keys       {staged column: SQL normalising the raw column into it, written
                     against the alias `raw_rows`}, in the order of the model's unique_key
    pseudonymised    {staged column: id type} for the key columns staged as the keyed
                     pseudonym of that SQL (a raw source id never leaves staging,
                     docs/decisions.md 50); other key columns are staged as they are

    A staged key that is a pseudonym cannot be turned back into the raw key, and
    pseudonymising every raw key on every run would cost the whole table. So the
    groups are found in two ways: by raw key, for the keys the raw rows of the
    changed batches name (new rows, re-deliveries, rows the purge left); and by
    pseudonym, for groups that only staged rows of a changed batch name (the purge
    took all their rows there), whose other raw rows can only be in the unchanged
    batches holding their staged rows: only those batches are pseudonymised.
-#}
{% macro triage_source(source_relation, group_keys, pseudonymised={}) -%}
    {{ return(adapter.dispatch('triage_source', 'cdp')(source_relation, group_keys, pseudonymised)) }}
{%- endmacro %}

{#- The staged value of a group key column from its normalised raw value `value_sql`. -#}
{% macro triage_staged_key(column, value_sql, pseudonymised) -%}
    {{ return(adapter.dispatch('triage_staged_key', 'cdp')(column, value_sql, pseudonymised)) }}
{%- endmacro %}

{% macro default__triage_staged_key(column, value_sql, pseudonymised) -%}
    {%- if column in pseudonymised -%}
        {{ pseudonymise("'" ~ pseudonymised[column] ~ "'", value_sql) }}
    {%- else -%}
        {{ value_sql }}
    {%- endif -%}
{%- endmacro %}

{% macro default__triage_source(source_relation, group_keys, pseudonymised) -%}
{%- for column in pseudonymised if column not in group_keys %}
    {{ exceptions.raise_compiler_error("triage_source: pseudonymised key " ~ column ~ " is not a group key") }}
{%- endfor %}
{%- if is_incremental() %}
triage_changed_batches as (

    {{ triage_changed_batches(source_relation) }}

),

-- the groups the raw rows of the changed batches name: normalised raw keys (in flight)
triage_raw_scope as (

    select distinct
        {%- for column, raw_sql in group_keys.items() %}
        {{ raw_sql }} as {{ column }},
        {%- endfor %}
        case when {{ triage_key_is_incomplete(group_keys.values() | list) }} then _batch_id end as _batch_id
    from {{ source_relation }} as raw_rows
    where _batch_id in (select _batch_id from triage_changed_batches)

),

-- every group to triage again, as staged (the markers name them)
triage_scope as (

    select
        {%- for column in group_keys %}
        {{ triage_staged_key(column, 'triage_raw_scope.' ~ column, pseudonymised) }} as {{ column }},
        {%- endfor %}
        _batch_id
    from triage_raw_scope

    union

    select
        {%- for column in group_keys %}
        {{ column }},
        {%- endfor %}
        case when {{ triage_key_is_incomplete(group_keys.keys() | list) }} then _batch_id end as _batch_id
    from {{ incremental_prior() }}
    where _batch_id in (select _batch_id from triage_changed_batches)

),

-- complete-key groups only staged rows name (the purge emptied them in a changed batch)
triage_orphan_scope as (

    select
        {%- for column in group_keys %}
        {{ column }}{{ "," if not loop.last }}
        {%- endfor %}
    from triage_scope
    where _batch_id is null

    except

    select
        {%- for column in group_keys %}
        {{ triage_staged_key(column, 'triage_raw_scope.' ~ column, pseudonymised) }}{{ "," if not loop.last }}
        {%- endfor %}
    from triage_raw_scope
    where _batch_id is null

),

-- their other raw rows are in the unchanged batches that hold their staged rows
triage_orphan_rows as (

    select raw_rows.*
    from {{ source_relation }} as raw_rows
    where
        raw_rows._batch_id in (
            select staged._batch_id
            from {{ incremental_prior() }} as staged
            inner join triage_orphan_scope
                on
                    {%- for column in group_keys %}
                    staged.{{ column }} = triage_orphan_scope.{{ column }}{{ " and" if not loop.last }}
                    {%- endfor %}
        )
        and raw_rows._batch_id not in (select _batch_id from triage_changed_batches)

),

source as (

    -- rows with a complete key the changed batches name: by raw key, whatever their batch
    select raw_rows.*
    from {{ source_relation }} as raw_rows
    inner join triage_raw_scope
        on
            {%- for column, raw_sql in group_keys.items() %}
            {{ raw_sql }} = triage_raw_scope.{{ column }}{{ " and" if not loop.last }}
            {%- endfor %}
    where triage_raw_scope._batch_id is null

    union all

    -- rows of groups only staged rows name: by their staged key
    select raw_rows.*
    from triage_orphan_rows as raw_rows
    inner join triage_orphan_scope
        on
            {%- for column, raw_sql in group_keys.items() %}
            {{ triage_staged_key(column, raw_sql, pseudonymised) }} = triage_orphan_scope.{{ column }}{{ " and" if not loop.last }}
            {%- endfor %}

    union all

    -- rows with an incomplete key: by what they have of the key, in their batch
    select raw_rows.*
    from {{ source_relation }} as raw_rows
    inner join triage_raw_scope
        on raw_rows._batch_id = triage_raw_scope._batch_id
            {%- for column, raw_sql in group_keys.items() %}
            and {{ raw_sql }} is not distinct from triage_raw_scope.{{ column }}
            {%- endfor %}

)
{%- else %}
source as {{ inline_cte() }} (

    select * from {{ source_relation }}

)
{%- endif %},

-- the groups with more than one raw row in `source`: only their rows can collide
triage_shared_groups as (

    select
        {%- for column, raw_sql in group_keys.items() %}
        {{ raw_sql }} as {{ column }}{{ "," if not loop.last }}
        {%- endfor %}
    from source as raw_rows
    group by
        {%- for raw_sql in group_keys.values() %}
        {{ raw_sql }}{{ "," if not loop.last }}
        {%- endfor %}
    having count(*) > 1

),

-- `source` with _triage_shared: does the row share its group (or lack part of the key)?
triage_rows as {{ inline_cte() }} (

    select
        raw_rows.*,
        (
            {{ triage_key_is_incomplete(group_keys.values() | list) }}
            or shared_groups.{{ (group_keys.keys() | list)[0] }} is not null
        ) as _triage_shared
    from source as raw_rows
    left join triage_shared_groups as shared_groups
        on
            {%- for column, raw_sql in group_keys.items() %}
            {{ raw_sql }} = shared_groups.{{ column }}{{ " and" if not loop.last }}
            {%- endfor %}

)
{%- endmacro %}

{#-
    Batches that changed since the last run: new, purged (their raw row count differs
    from the count staged from them) or, for a table the purge rewrites in place
    (landing_rewritten_in_place), rewritten: their content checksum differs from the
    one recorded after the last run (triage_record_batch_state). With no record (a
    table built before records were kept), every batch counts as changed.
-#}
{% macro triage_changed_batches(source_relation, staged=none) -%}
    {{ return(adapter.dispatch('triage_changed_batches', 'cdp')(source_relation, staged)) }}
{%- endmacro %}

{#- `staged`: the model's previous rows (default: incremental_prior()). -#}
{% macro default__triage_changed_batches(source_relation, staged=none) -%}
{%- set checksummed = landing_rewritten_in_place(source_relation) -%}
{%- set state = triage_batch_state_relation(this) -%}
{%- set recorded = checksummed and execute and adapter.get_relation(
    database=state.database, schema=state.schema, identifier=state.identifier) is not none -%}
select coalesce(raw_batches._batch_id, staged_batches._batch_id) as _batch_id
from (
    {{ landing_batch_state(source_relation, checksummed) }}
) as raw_batches
full outer join (
    select
        _batch_id,
        count(*) as row_count
    from {{ staged or incremental_prior() }}
    group by _batch_id
) as staged_batches
    on raw_batches._batch_id = staged_batches._batch_id
{%- if recorded %}
left join {{ state }} as recorded_batches
    on raw_batches._batch_id = recorded_batches._batch_id
{%- endif %}
where
    raw_batches.row_count is distinct from staged_batches.row_count
    {%- if recorded %}
    or raw_batches.checksum is distinct from recorded_batches.checksum
    {%- elif checksummed %}
    or true
    {%- endif %}
{%- endmacro %}

{#-
    Per batch of a landing table: its row count and, with `checksum`, an order-free
    checksum of its rows' whole content (the sum of DuckDB's 64-bit hash of each row;
    a sum, not a xor, so two equal rows rewritten alike still change it).
-#}
{% macro landing_batch_state(source_relation, checksum) -%}
    {{ return(adapter.dispatch('landing_batch_state', 'cdp')(source_relation, checksum)) }}
{%- endmacro %}

{% macro default__landing_batch_state(source_relation, checksum) -%}
    {{ exceptions.raise_compiler_error("cdp: landing_batch_state has no portable implementation for adapter "
        ~ adapter.type() ~ "; write " ~ adapter.type() ~ "__landing_batch_state (the DuckDB version is "
        ~ "duckdb__landing_batch_state in macros/staging/incremental.sql)") }}
{%- endmacro %}

{% macro duckdb__landing_batch_state(source_relation, checksum) -%}
    select
        _batch_id,
        count(*) as row_count
        {%- if checksum %},
        sum(hash(raw_rows)) as checksum
        {%- endif %}
    from {{ source_relation }} as raw_rows
    group by _batch_id
{%- endmacro %}

{#-
    Does the purge rewrite rows of this landing table in place (the sources' metadata,
    as cdp.sources reads it: `erasure` null_fields or replace_fields, or free-text
    columns whose `free_text_erasure` is not delete_rows)? Batch row counts cannot see
    such a change; a content checksum per batch can.
-#}
{% macro landing_rewritten_in_place(source_relation) -%}
    {{ return(adapter.dispatch('landing_rewritten_in_place', 'cdp')(source_relation)) }}
{%- endmacro %}

{% macro default__landing_rewritten_in_place(source_relation) -%}
    {%- set found = [] -%}
    {%- for node in landing_sources() if node.schema == source_relation.schema and node.name == source_relation.identifier -%}
        {%- set free_text = [] -%}
        {%- for column in landing_columns(node) if column.meta.get('free_text') -%}
            {%- do free_text.append(column.name) -%}
        {%- endfor -%}
        {%- if node.meta.get('erasure') in ('null_fields', 'replace_fields')
            or (free_text and (node.meta.get('free_text_erasure') or 'null_fields') != 'delete_rows') -%}
            {%- do found.append(node) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(found | length > 0) }}
{%- endmacro %}

{#- Where an incremental model records its landing batches after each run: `<model>__raw_batches`. -#}
{% macro triage_batch_state_relation(relation) -%}
    {{ return(adapter.dispatch('triage_batch_state_relation', 'cdp')(relation)) }}
{%- endmacro %}

{% macro default__triage_batch_state_relation(relation) -%}
    {{ return(api.Relation.create(database=relation.database, schema=relation.schema,
        identifier=relation.identifier ~ '__raw_batches')) }}
{%- endmacro %}

{#-
    Post-hook of every staging model (dbt_project.yml): an incremental triaged model
    whose landing table the purge rewrites in place records each batch's row count and
    checksum, in the model's transaction, for the next run's triage_changed_batches.
    Any other model: nothing.
-#}
{% macro triage_record_batch_state() -%}
    {{ return(adapter.dispatch('triage_record_batch_state', 'cdp')()) }}
{%- endmacro %}

{% macro default__triage_record_batch_state() -%}
{%- set read = [] -%}
{%- for source_name, table_name in model.sources if (source_name, table_name) not in read -%}
    {%- do read.append((source_name, table_name)) -%}
{%- endfor -%}
{%- if model.config.materialized == 'incremental' and model.name.endswith('_triaged') and read | length == 1 -%}
    {%- set source_relation = source(read[0][0], read[0][1]) -%}
    {%- if landing_rewritten_in_place(source_relation) -%}
create or replace table {{ triage_batch_state_relation(this) }} as
{{ landing_batch_state(source_relation, true) }}
    {%- endif -%}
{%- endif -%}
{%- endmacro %}

{#- True when any part of a triage key is missing: such rows are grouped per batch. -#}
{% macro triage_key_is_incomplete(key_sqls) -%}
    {{ return(adapter.dispatch('triage_key_is_incomplete', 'cdp')(key_sqls)) }}
{%- endmacro %}

{% macro default__triage_key_is_incomplete(key_sqls) -%}
    ({% for key_sql in key_sqls %}{{ key_sql }} is null{{ " or " if not loop.last }}{% endfor %})
{%- endmacro %}

{#-
    Appended to the final select of an incremental triaged model: one marker row
    per group in scope, which tells the `regroup` strategy which staged rows to
    replace (a group the purge emptied has no triaged row left to say so).
-#}
{% macro triage_scope_markers(group_keys) -%}
    {{ return(adapter.dispatch('triage_scope_markers', 'cdp')(group_keys)) }}
{%- endmacro %}

{% macro default__triage_scope_markers(group_keys) -%}
    {{ exceptions.raise_compiler_error(
        "cdp: triage_scope_markers relies on DuckDB's UNION ALL BY NAME; write "
        ~ adapter.type() ~ "__triage_scope_markers (the DuckDB version is duckdb__triage_scope_markers "
        ~ "in macros/staging/incremental.sql)") }}
{%- endmacro %}

{% macro duckdb__triage_scope_markers(group_keys) -%}
{%- if is_incremental() %}
union all by name
select
    {%- for column in group_keys %}
    {{ column }},
    {%- endfor %}
    _batch_id,
    '{{ triage_marker_status() }}' as row_status
from triage_scope
{%- endif %}
{%- endmacro %}

{#- The row_status of a scope marker: never a real status, never stored. -#}
{% macro triage_marker_status() -%}
    {{ return(adapter.dispatch('triage_marker_status', 'cdp')()) }}
{%- endmacro %}

{% macro default__triage_marker_status() -%}
(regroup)
{%- endmacro %}

{#-
    The `regroup` incremental strategy (incremental_strategy='regroup'): delete the
    staged rows of every group a marker names, then insert the newly triaged rows.
    unique_key lists the group's key columns. Runs inside the model's transaction.
-#}
{% macro get_incremental_regroup_sql(arg_dict) -%}
    {{ return(adapter.dispatch('get_incremental_regroup_sql', 'cdp')(arg_dict)) }}
{%- endmacro %}

{% macro default__get_incremental_regroup_sql(arg_dict) -%}
    {%- set target = arg_dict['target_relation'] -%}
    {%- set temp = arg_dict['temp_relation'] -%}
    {%- set keys = arg_dict['unique_key'] -%}
    {%- set keys = [keys] if keys is string else keys -%}
    {%- if not keys -%}
        {{ exceptions.raise_compiler_error("cdp: the regroup strategy needs unique_key: the triage group's key columns") }}
    {%- endif -%}
    {%- set columns = arg_dict['dest_columns'] | map(attribute='quoted') | join(', ') -%}
-- groups with a complete key: all their staged rows
delete from {{ target }}
using {{ temp }} as marker
where marker.row_status = '{{ triage_marker_status() }}'
    and marker._batch_id is null
    {%- for key in keys %}
    and marker.{{ key }} = {{ target }}.{{ key }}
    {%- endfor %};

-- rows with an incomplete key: grouped by what they have of the key, per batch
delete from {{ target }}
using {{ temp }} as marker
where marker.row_status = '{{ triage_marker_status() }}'
    and marker._batch_id = {{ target }}._batch_id
    {%- for key in keys %}
    and marker.{{ key }} is not distinct from {{ target }}.{{ key }}
    {%- endfor %};

insert into {{ target }} ({{ columns }})
select {{ columns }}
from {{ temp }}
where row_status <> '{{ triage_marker_status() }}'
{%- endmacro %}

{#-
    A lookup of `expression` (SQL over `column`) computed once per distinct value
    of `column` in `from_cte`: for the Python normalisers, which cost microseconds
    a call, joined back by value (`is not distinct from`, so null maps too).
-#}
{% macro per_distinct_value(from_cte, column, expression, alias) -%}
    {{ return(adapter.dispatch('per_distinct_value', 'cdp')(from_cte, column, expression, alias)) }}
{%- endmacro %}

{% macro default__per_distinct_value(from_cte, column, expression, alias) -%}
    select
        {{ column }},
        {{ expression }} as {{ alias }}
    from (select distinct {{ column }} from {{ from_cte }}) as distinct_values
{%- endmacro %}
