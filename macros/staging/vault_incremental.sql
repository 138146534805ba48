{#-
    The vault's incremental runs (docs/decisions.md, 65). Every entry of
    vault_identifiers comes from one raw row alone, so a landing zone that only
    grew adds entries and removes none: the run reads only the batches that are
    new since the last run (vault_customer_names triages again the customers
    those batches name, and replaces their names). A purge or an erasure deletes raw rows or rewrites them in
    place, which can take an identifier out of the landing zone: the run then reads
    every batch and replaces the vault, as a full refresh does. Which batches the
    last run saw is recorded after each run (vault_record_landing_batches), per
    landing table: row count, and for a table the purge rewrites in place the
    content checksum (landing_batch_state, macros/staging/incremental.sql).
-#}

{#- Where the vault records the landing batches it read: `<model>__raw_batches`, in the vault. -#}
{% macro vault_batch_state_relation() -%}
    {{ return(adapter.dispatch('vault_batch_state_relation', 'cdp')()) }}
{%- endmacro %}

{% macro default__vault_batch_state_relation() -%}
    {{ return(triage_batch_state_relation(this)) }}
{%- endmacro %}

{#-
    The landing tables' batches now: source_table, _batch_id, row_count, checksum (or
    null). `tables` ('<schema>.<table>' names) restricts it to the tables a model reads;
    none means every landing table.
-#}
{% macro vault_landing_state(tables=none) -%}
    {{ return(adapter.dispatch('vault_landing_state', 'cdp')(tables)) }}
{%- endmacro %}

{% macro default__vault_landing_state(tables) -%}
    {%- for node in landing_sources() if tables is none or (node.schema ~ '.' ~ node.name) in tables %}
    {% if not loop.first %}union all{% endif %}
    {%- set relation = landing_relation(node) %}
    {%- set checksum = landing_rewritten_in_place(relation) %}
    select
        '{{ node.schema }}.{{ node.name }}' as source_table,
        _batch_id,
        row_count,
        {% if checksum %}checksum{% else %}cast(null as hugeint) as checksum{% endif %}
    from ({{ landing_batch_state(relation, checksum) }}) as batches
    {%- else %}
    select
        cast(null as varchar) as source_table,
        cast(null as varchar) as _batch_id,
        cast(null as bigint) as row_count,
        cast(null as hugeint) as checksum
    where false
    {%- endfor %}
{%- endmacro %}

{#-
    The CTEs of an incremental vault run: `vault_new_batches` (source_table, _batch_id
    of the batches not recorded after the last run) and `vault_replace` (is_replaced:
    a recorded batch lost or changed rows, or nothing was recorded).
-#}
{% macro vault_landing_batches(tables=none) -%}
    {{ return(adapter.dispatch('vault_landing_batches', 'cdp')(tables)) }}
{%- endmacro %}

{% macro default__vault_landing_batches(tables) -%}
{%- set state = vault_batch_state_relation() -%}
{%- set recorded = execute and adapter.get_relation(
    database=state.database, schema=state.schema, identifier=state.identifier) is not none -%}
vault_batches_now as {{ materialized_cte() }} (

    {{ vault_landing_state(tables) }}

),

vault_batches_recorded as (

    {%- if recorded %}
    select * from {{ state }}
    {%- else %}
    select * from vault_batches_now where false
    {%- endif %}

),

vault_new_batches as (

    select source_table, _batch_id from vault_batches_now
    except
    select source_table, _batch_id from vault_batches_recorded

),

vault_replace as (

    select
        {{ 'false' if recorded else 'true' }} or count(*) > 0 as is_replaced
    from vault_batches_recorded as recorded
    left join vault_batches_now as now
        on recorded.source_table = now.source_table and recorded._batch_id = now._batch_id
    where
        now._batch_id is null
        or now.row_count <> recorded.row_count
        or now.checksum is distinct from recorded.checksum

)
{%- endmacro %}

{#-
    The rows of a landing table the vault reads: all of them, or in an incremental run
    those of its new batches (all of them when the vault is replaced).
-#}
{% macro vault_landing_rows(relation) -%}
    {{ return(adapter.dispatch('vault_landing_rows', 'cdp')(relation)) }}
{%- endmacro %}

{% macro default__vault_landing_rows(relation) -%}
{%- if is_incremental() -%}
(
    select *
    from {{ relation }}
    where
        (select is_replaced from vault_replace)
        or _batch_id in (
            select _batch_id from vault_new_batches
            where source_table = '{{ relation.schema }}.{{ relation.identifier }}'
        )
)
{%- else -%}
{{ relation }}
{%- endif -%}
{%- endmacro %}

{#-
    Appended to a vault model's final select in an incremental run: marker rows (the
    `kind` column set to triage_marker_status()) for the vault_append strategy. One with
    a null `owner` when the vault is replaced (vault_replace); with `scope_cte`, one per
    owner in scope, `owner_sql` computing the owner from the scope's columns, whose
    entries the run replaces.
-#}
{% macro vault_scope_markers(kind, owner, owner_sql=none, scope_cte=none) -%}
    {{ return(adapter.dispatch('vault_scope_markers', 'cdp')(kind, owner, owner_sql, scope_cte)) }}
{%- endmacro %}

{% macro default__vault_scope_markers(kind, owner, owner_sql, scope_cte) -%}
    {{ exceptions.raise_compiler_error(
        "cdp: vault_scope_markers relies on DuckDB's UNION ALL BY NAME; write "
        ~ adapter.type() ~ "__vault_scope_markers (the DuckDB version is duckdb__vault_scope_markers "
        ~ "in macros/staging/vault_incremental.sql)") }}
{%- endmacro %}

{% macro duckdb__vault_scope_markers(kind, owner, owner_sql, scope_cte) -%}
{%- if is_incremental() %}
union all by name
select
    cast(null as varchar) as {{ owner }},
    '{{ triage_marker_status() }}' as {{ kind }}
where (select is_replaced from vault_replace)
{%- if scope_cte %}
union all by name
select
    {{ owner_sql }} as {{ owner }},
    '{{ triage_marker_status() }}' as {{ kind }}
from {{ scope_cte }}
where not (select is_replaced from vault_replace)
{%- endif %}
{%- endif %}
{%- endmacro %}

{#-
    The `vault_append` incremental strategy (unique_key: [owner column, kind column]):
    a marker row (kind triage_marker_status()) with a null owner deletes every entry, one
    with an owner deletes that owner's entries; then the run's other rows are inserted.
    Runs inside the model's transaction.
-#}
{% macro get_incremental_vault_append_sql(arg_dict) -%}
    {{ return(adapter.dispatch('get_incremental_vault_append_sql', 'cdp')(arg_dict)) }}
{%- endmacro %}

{% macro default__get_incremental_vault_append_sql(arg_dict) -%}
    {%- set target = arg_dict['target_relation'] -%}
    {%- set temp = arg_dict['temp_relation'] -%}
    {%- set keys = arg_dict['unique_key'] -%}
    {%- if keys is string or not keys or keys | length != 2 -%}
        {{ exceptions.raise_compiler_error("cdp: the vault_append strategy needs unique_key: [owner column, kind column]") }}
    {%- endif -%}
    {%- set owner, kind = keys[0], keys[1] -%}
    {%- set marker = triage_marker_status() -%}
    {%- set columns = arg_dict['dest_columns'] | map(attribute='quoted') | join(', ') -%}
-- the vault replaced: every entry
delete from {{ target }}
where exists (select 1 from {{ temp }} where {{ kind }} = '{{ marker }}' and {{ owner }} is null);

-- owners in scope: all their entries
delete from {{ target }}
using {{ temp }} as marker
where marker.{{ kind }} = '{{ marker }}'
    and marker.{{ owner }} = {{ target }}.{{ owner }};

insert into {{ target }} ({{ columns }})
select {{ columns }}
from {{ temp }}
where {{ kind }} <> '{{ marker }}'
{%- endmacro %}

{#-
    The vault model's post-hook: record every landing table's batches as this run
    read them, in the model's transaction (in the vault file, beside the entries).
-#}
{% macro vault_record_landing_batches(tables=none) -%}
    {{ return(adapter.dispatch('vault_record_landing_batches', 'cdp')(tables)) }}
{%- endmacro %}

{% macro default__vault_record_landing_batches(tables) -%}
create or replace table {{ vault_batch_state_relation() }} as
{{ vault_landing_state(tables) }}
{%- endmacro %}
