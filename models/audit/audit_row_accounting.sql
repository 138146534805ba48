{#-
    How every raw row was accounted for, per source table and load batch:
    raw = kept + duplicate + superseded + quarantined (tested against the raw
    zone by the accounts_for_every_raw_row test on each triaged model). The
    tables are every staging model of the staging recipe
    (stg_<source>__<table>_triaged, macros/sources).
-#}
{#-
    A view: the union names its tables only at run time (macros/sources), so dbt
    cannot rebuild it when a selection (`-s stg_x_triaged+`) rebuilds one of them;
    as a view it always reads the staging tables as they are.
-#}
{{ config(materialized='view') }}
{%- set triaged = triaged_models() %}
with unioned as (

    {%- for model, source_node in triaged %}
    {% if not loop.first %}union all{% endif %}
    select
        '{{ landing_table_name(source_node) }}' as source_table,
        _batch_id,
        row_status
    from {{ node_relation(model) }}
    {%- else %}
    select
        cast(null as {{ text_type() }}) as source_table,
        cast(null as {{ text_type() }}) as _batch_id,
        cast(null as {{ text_type() }}) as row_status
    where false
    {%- endfor %}

),

final as (

    select
        source_table,
        _batch_id,
        count(*) as raw_rows,
        count(*) filter (where row_status = 'kept') as kept_rows,
        count(*) filter (where row_status = 'duplicate') as duplicate_rows,
        count(*) filter (where row_status = 'superseded') as superseded_rows,
        count(*) filter (where row_status = 'quarantined') as quarantined_rows
    from unioned
    group by source_table, _batch_id

)

select * from final
