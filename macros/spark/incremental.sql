{#-
    Incremental runs on Spark (docs/decisions.md, 91). Parquet tables refuse DELETE and MERGE,
    which the DuckDB strategies (regroup, vault_append) need, and Spark refuses to overwrite a
    table the overwriting query reads. So an incremental run of a triaged or a vault model on
    Spark:

      1. copies the table to `<model>__prior` (pre-hook incremental_prior_copy);
      2. computes the whole new table, reading the copy where DuckDB reads `this`
         (incremental_prior): the newly triaged or sealed rows, union all the copy's rows outside
         the scope (spark__triage_scope_markers, spark__vault_scope_markers): the rows the
         DuckDB strategy's deletes keep;
      3. replaces the table's content by it: dbt-spark's `insert_overwrite` strategy, without
         partitions (dbt_project.yml, the vault models' config);
      4. drops the copy (post-hook incremental_prior_drop).

    The triage (and the seal) runs only on the groups in scope, as on DuckDB; the table is
    rewritten whole, twice (the copy, the overwrite). A run that fails after the overwrite
    started leaves a table whose staged row counts no longer match the landing batches: the
    next run triages those batches again (triage_changed_batches), as it does after a purge.
-#}

{#- The relation an incremental run reads the model's previous content from: `this` on DuckDB;
    on Spark the copy the pre-hook made (`<model>__prior`), as the run overwrites `this`. -#}
{% macro incremental_prior() -%}
    {{ return(adapter.dispatch('incremental_prior', 'cdp')()) }}
{%- endmacro %}

{% macro default__incremental_prior() -%}
    {{ return(this) }}
{%- endmacro %}

{% macro spark__incremental_prior() -%}
    {{ return(this.incorporate(path={"identifier": this.identifier ~ '__prior'})) }}
{%- endmacro %}

{#- Pre-hook of every staging model (dbt_project.yml): on Spark, an incremental run first
    copies the table to incremental_prior(), and drops the model's batch record
    (`<model>__raw_batches`, read when dbt compiled the model; the post-hook writes it again):
    a run that fails once the overwrite has begun, which may leave the table empty, then leaves
    no record, so the next run reads every batch (the vault is replaced; every batch of a
    checksummed landing table counts as changed) instead of trusting a record of rows the
    table lost. Elsewhere, or in a full build: nothing. -#}
{% macro incremental_prior_copy() -%}
    {{ return(adapter.dispatch('incremental_prior_copy', 'cdp')()) }}
{%- endmacro %}

{% macro default__incremental_prior_copy() -%}
{%- endmacro %}

{% macro spark__incremental_prior_copy() -%}
{%- if execute and model.config.materialized == 'incremental' and is_incremental() -%}
    {%- do run_query('drop table if exists ' ~ incremental_prior()) -%}
    {%- do run_query('drop table if exists ' ~ triage_batch_state_relation(this)) -%}
create table {{ incremental_prior() }} using parquet as select * from {{ this }}
{%- endif -%}
{%- endmacro %}

{#- Post-hook of every staging model (dbt_project.yml): on Spark, drop the copy an incremental
    run made (incremental_prior_copy). Elsewhere: nothing. -#}
{% macro incremental_prior_drop() -%}
    {{ return(adapter.dispatch('incremental_prior_drop', 'cdp')()) }}
{%- endmacro %}

{% macro default__incremental_prior_drop() -%}
{%- endmacro %}

{% macro spark__incremental_prior_drop() -%}
{%- if model.config.materialized == 'incremental' -%}
drop table if exists {{ incremental_prior() }}
{%- endif -%}
{%- endmacro %}

{#-
    Spark: a full build has no markers. An incremental run appends the previous rows
    (incremental_prior) the regroup strategy would keep: those of no complete-key group in
    scope, and of no incomplete-key group of their batch in scope (the two deletes of
    default__get_incremental_regroup_sql, as anti joins).
-#}
{% macro spark__triage_scope_markers(group_keys) -%}
{%- if is_incremental() %}
union all
select kept.*
from {{ incremental_prior() }} as kept
left anti join (
    select
        {%- for column in group_keys %}
        {{ column }}{{ "," if not loop.last }}
        {%- endfor %}
    from triage_scope
    where _batch_id is null
) as complete_scope
    on
        {%- for column in group_keys %}
        kept.{{ column }} = complete_scope.{{ column }}{{ " and" if not loop.last }}
        {%- endfor %}
left anti join (
    select
        {%- for column in group_keys %}
        {{ column }},
        {%- endfor %}
        _batch_id
    from triage_scope
    where _batch_id is not null
) as incomplete_scope
    on kept._batch_id = incomplete_scope._batch_id
        {%- for column in group_keys %}
        and kept.{{ column }} <=> incomplete_scope.{{ column }}
        {%- endfor %}
{%- endif %}
{%- endmacro %}

{#-
    Spark: a full build has no markers. An incremental run appends the previous entries
    (incremental_prior) the vault_append strategy would keep: none when the vault is replaced;
    else all, but those of the owners in scope (`scope_cte`, `owner_sql`) when given.
-#}
{% macro spark__vault_scope_markers(kind, owner, owner_sql, scope_cte) -%}
{%- if is_incremental() %}
union all
select kept.*
from {{ incremental_prior() }} as kept
{%- if scope_cte %}
left anti join (
    select {{ owner_sql }} as scope_owner
    from {{ scope_cte }}
) as in_scope
    on kept.{{ owner }} = in_scope.scope_owner
{%- endif %}
where not (select is_replaced from vault_replace)
{%- endif %}
{%- endmacro %}

{#-
    Spark: a landing batch's row count and, with `checksum`, the sum of xxhash64 over each row's
    columns and a null flag per column (Spark's hashes skip a NULL, so without the flags a value
    moved to the next column, or a NULL written in place of an empty string, would not change
    it), as decimal(38, 0) so the sum does not wrap. A sum, not a xor: two equal rows rewritten
    alike change it.
-#}
{% macro spark__landing_batch_state(source_relation, checksum) -%}
    {%- set columns = adapter.get_columns_in_relation(source_relation) if execute and checksum else [] -%}
    select
        _batch_id,
        count(*) as row_count
        {%- if checksum %},
        sum(cast(xxhash64(
            {%- for column in columns %}
            raw_rows.`{{ column.name }}`,
            raw_rows.`{{ column.name }}` is null{{ "," if not loop.last }}
            {%- else %}
            0
            {%- endfor %}
        ) as decimal(38, 0))) as checksum
        {%- endif %}
    from {{ source_relation }} as raw_rows
    group by _batch_id
{%- endmacro %}

{#- Spark: as default__triage_record_batch_state, the record replaced by drop and create (no
    `create or replace` for a Parquet table); after the overwrite (no transaction: a run that
    fails before it leaves the older record, and the next run triages more, never less). -#}
{% macro spark__triage_record_batch_state() -%}
{%- set read = [] -%}
{%- for source_name, table_name in model.sources if (source_name, table_name) not in read -%}
    {%- do read.append((source_name, table_name)) -%}
{%- endfor -%}
{%- if execute and model.config.materialized == 'incremental' and model.name.endswith('_triaged') and read | length == 1 -%}
    {%- set source_relation = source(read[0][0], read[0][1]) -%}
    {%- if landing_rewritten_in_place(source_relation) -%}
        {%- do run_query('drop table if exists ' ~ triage_batch_state_relation(this)) -%}
create table {{ triage_batch_state_relation(this) }} using parquet as
{{ landing_batch_state(source_relation, true) }}
    {%- endif -%}
{%- endif -%}
{%- endmacro %}

{#- A Spark string literal of `value` (Spark reads a backslash in a literal as an escape). -#}
{% macro spark_string_literal(value) -%}
    {{ return(adapter.dispatch('spark_string_literal', 'cdp')(value)) }}
{%- endmacro %}

{% macro default__spark_string_literal(value) -%}
    {{ return("null" if value is none else "'" ~ (value | string | replace("\\", "\\\\") | replace("'", "\\'")) ~ "'") }}
{%- endmacro %}

{#-
    Spark: the changed batches as a list of literals, found when dbt compiles the model (one
    query, over `this`: the copy does not exist yet). Spark inlines a CTE wherever it is read,
    and triage_source reads this one, through its readers, dozens of times: computed in the
    model, its joins of every landing batch with the staged counts ran in every reference
    (docs/decisions.md, 91). While dbt parses: the query unrun.
-#}
{% macro spark__triage_changed_batches(source_relation, staged=none) -%}
{%- if execute and staged is none -%}
    {%- set found = run_query(default__triage_changed_batches(source_relation, this)) -%}
    {%- set batches = found.columns[0].values() | list -%}
    {%- if batches %}
    select _batch_id
    from values
        {%- for batch in batches %}
        ({{ spark_string_literal(batch) }}){{ "," if not loop.last }}
        {%- endfor %}
        as changed (_batch_id)
    {%- else %}
    select cast(null as string) as _batch_id
    where false
    {%- endif -%}
{%- else -%}
    {{ default__triage_changed_batches(source_relation, staged) }}
{%- endif -%}
{%- endmacro %}

{#- Spark: the landing state with Spark's types (string, the checksum a decimal(38, 0)). A table of
    `tables` is named as on DuckDB, by its source (`crm.customers`): its schema is `raw_crm` here. -#}
{% macro spark__vault_landing_state(tables) -%}
    {%- for node in landing_sources() if tables is none or (node.source_name ~ '.' ~ node.name) in tables %}
    {% if not loop.first %}union all{% endif %}
    {%- set relation = landing_relation(node) %}
    {%- set checksum = landing_rewritten_in_place(relation) %}
    select
        '{{ node.schema }}.{{ node.name }}' as source_table,
        _batch_id,
        row_count,
        {% if checksum %}checksum{% else %}cast(null as decimal(38, 0)) as checksum{% endif %}
    from ({{ landing_batch_state(relation, checksum) }}) as batches
    {%- else %}
    select
        cast(null as string) as source_table,
        cast(null as string) as _batch_id,
        cast(null as bigint) as row_count,
        cast(null as decimal(38, 0)) as checksum
    where false
    {%- endfor %}
{%- endmacro %}

{#-
    Spark: DuckDB's CTEs (default__vault_landing_batches), their results found when dbt compiles
    the model and written as literals (as spark__triage_changed_batches, for the same reason:
    vault_landing_rows reads both in every landing table's branch). While dbt parses: the CTEs.
-#}
{% macro spark__vault_landing_batches(tables) -%}
{%- if execute -%}
    {%- set found = run_query("with " ~ default__vault_landing_batches(tables) ~ "
select 'replace' as kind, cast(null as string) as source_table, cast(null as string) as _batch_id
from vault_replace where is_replaced
union all
select 'new' as kind, source_table, _batch_id from vault_new_batches") -%}
    {%- set new, replacing = [], [] -%}
    {%- for row in found.rows -%}
        {%- do (replacing if row[0] == 'replace' else new).append(row) -%}
    {%- endfor -%}
    {%- set replaced = replacing | length > 0 -%}
vault_new_batches as (

    {%- if new %}
    select source_table, _batch_id
    from values
        {%- for row in new %}
        ({{ spark_string_literal(row[1]) }}, {{ spark_string_literal(row[2]) }}){{ "," if not loop.last }}
        {%- endfor %}
        as batches (source_table, _batch_id)
    {%- else %}
    select
        cast(null as string) as source_table,
        cast(null as string) as _batch_id
    where false
    {%- endif %}

),

vault_replace as (

    select {{ 'true' if replaced else 'false' }} as is_replaced

)
{%- else -%}
    {{ return(default__vault_landing_batches(tables)) }}
{%- endif -%}
{%- endmacro %}

{#- Spark: the record replaced by drop and create (as spark__triage_record_batch_state). -#}
{% macro spark__vault_record_landing_batches(tables) -%}
{%- if execute %}
    {%- do run_query('drop table if exists ' ~ vault_batch_state_relation()) -%}
create table {{ vault_batch_state_relation() }} using parquet as
{{ vault_landing_state(tables) }}
{%- endif %}
{%- endmacro %}
