{#-
    Every quarantined raw row of every landing table, with the reason. A row is
    located by its batch and its key's pseudonym, as staged (a raw source id
    would join back to the raw row's personal data: docs/decisions.md, 50); raw
    values stay in the raw zone. The tables are every staging model of the
    staging recipe (stg_<source>__<table>_triaged, macros/sources), each
    locating its rows by its meta's record_locator.
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
        _loaded_at,
        {{ model.config.meta.get('record_locator', 'cast(null as ' ~ text_type() ~ ')') }} as record_locator,
        reject_reason
    from {{ node_relation(model) }}
    where row_status = 'quarantined'
    {%- else %}
    select
        cast(null as {{ text_type() }}) as source_table,
        cast(null as {{ text_type() }}) as _batch_id,
        cast(null as timestamp) as _loaded_at,
        cast(null as {{ text_type() }}) as record_locator,
        cast(null as {{ text_type() }}) as reject_reason
    where false
    {%- endfor %}

),

final as (

    select
        source_table,
        _batch_id,
        _loaded_at,
        record_locator,
        reject_reason
    from unioned

)

select * from final
