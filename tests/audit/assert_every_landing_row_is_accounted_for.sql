{{ config(tags=['vault_stage']) }}
{#-
    Every landing table the sources declare has a staging model of the staging
    recipe (stg_<source>__<table>_triaged), and every raw row of it appears
    there exactly once per load batch with one status (as the
    accounts_for_every_raw_row test checks per model). Derived from the sources'
    metadata (macros/sources), so a new landing table is checked with no other
    edit. Runs in the vault stage, after every staging model was built (the
    graph-derived union has no parse-time dependency to order it by).
-#}
{%- set triaged = triaged_models() %}
{%- set staged = [] %}
{%- for model, source_node in triaged %}
    {%- do staged.append(source_node.unique_id) %}
{%- endfor %}
with missing as (

    {%- for node in landing_sources() if node.unique_id not in staged %}
    {% if not loop.first %}union all{% endif %}
    select
        '{{ node.schema }}.{{ node.name }}' as source_table,
        cast(null as {{ text_type() }}) as _batch_id,
        'no staging model stg_{{ node.source_name }}__{{ node.name }}_triaged' as problem
    {%- else %}
    select
        cast(null as {{ text_type() }}) as source_table,
        cast(null as {{ text_type() }}) as _batch_id,
        cast(null as {{ text_type() }}) as problem
    where false
    {%- endfor %}

),

{%- for model, source_node in triaged %}

raw_counts_{{ loop.index }} as (

    select
        _batch_id,
        count(*) as raw_rows
    from {{ landing_relation(source_node) }}
    group by _batch_id

),

staged_counts_{{ loop.index }} as (

    select
        _batch_id,
        count(*) as staged_rows,
        count(*) filter (
            where row_status is null
            or row_status not in ('kept', 'duplicate', 'superseded', 'quarantined')
            or (row_status = 'quarantined') <> (reject_reason is not null)
        ) as bad_rows
    from {{ node_relation(model) }}
    group by _batch_id

),
{%- endfor %}

unaccounted as (

    {%- for model, source_node in triaged %}
    {% if not loop.first %}union all{% endif %}
    select
        '{{ source_node.schema }}.{{ source_node.name }}' as source_table,
        coalesce(raw_counts_{{ loop.index }}._batch_id, staged_counts_{{ loop.index }}._batch_id) as _batch_id,
        'raw rows ' || coalesce(cast(raw_counts_{{ loop.index }}.raw_rows as {{ text_type() }}), '0')
        || ', staged rows ' || coalesce(cast(staged_counts_{{ loop.index }}.staged_rows as {{ text_type() }}), '0')
        || ', rows without one known status '
        || coalesce(cast(staged_counts_{{ loop.index }}.bad_rows as {{ text_type() }}), '0') as problem
    from raw_counts_{{ loop.index }}
    full outer join staged_counts_{{ loop.index }}
        on raw_counts_{{ loop.index }}._batch_id = staged_counts_{{ loop.index }}._batch_id
    where
        raw_counts_{{ loop.index }}.raw_rows is distinct from staged_counts_{{ loop.index }}.staged_rows
        or staged_counts_{{ loop.index }}.bad_rows > 0
    {%- else %}
    select
        cast(null as {{ text_type() }}) as source_table,
        cast(null as {{ text_type() }}) as _batch_id,
        cast(null as {{ text_type() }}) as problem
    where false
    {%- endfor %}

),

problems as (

    select
        source_table,
        _batch_id,
        problem
    from missing
    union all
    select
        source_table,
        _batch_id,
        problem
    from unaccounted

)

select * from problems
