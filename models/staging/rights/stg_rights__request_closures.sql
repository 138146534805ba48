{#-
    Evidence that a subject request was completed outside the build, one row
    per request: the purge destroyed an erasure request's data (raw
    audit.destruction_log, reason erasure_request) or the privacy officer
    produced an access export for it (the vault's re-identification log,
    action access_export). Each log exists only once its tool has run, so it
    is read only when present. Request ids and times only: no pseudonym, no
    officer name.

    A table, not a view: the analytics stage reads it, and only the privacy
    stage attaches the raw zone and the vault. The logs are declared below,
    where dbt sees them at parse time (it does not run the `execute` branch).
-#}
{{ config(materialized='table') }}
-- depends_on: {{ source('raw_audit', 'destruction_log') }}
-- depends_on: {{ source('vault_log', 'reidentification_log') }}
{%- set destruction_log = none -%}
{%- set vault_log = none -%}
{%- if execute -%}
    {#- where the sources say (on Spark the databases raw_audit and vault, dbt-spark has no catalogs) -#}
    {%- set destruction_source = source('raw_audit', 'destruction_log') -%}
    {%- set vault_source = source('vault_log', 'reidentification_log') -%}
    {%- set destruction_log = adapter.get_relation(
        database=destruction_source.database, schema=destruction_source.schema, identifier='destruction_log') -%}
    {%- set vault_log = adapter.get_relation(
        database=vault_source.database, schema=vault_source.schema, identifier='reidentification_log') -%}
    {#- a log written before access exports existed has no request_id: nothing to read from it -#}
    {%- if vault_log is not none -%}
        {%- set vault_log_columns = adapter.get_columns_in_relation(vault_log) | map(attribute='name') | list -%}
        {%- if 'request_id' not in vault_log_columns -%}{%- set vault_log = none -%}{%- endif -%}
    {%- endif -%}
    {%- if destruction_log is not none -%}
        {%- set destruction_columns = adapter.get_columns_in_relation(destruction_log) | map(attribute='name') | list -%}
        {%- if 'request_id' not in destruction_columns -%}{%- set destruction_log = none -%}{%- endif -%}
    {%- endif -%}
{%- endif %}

with destructions as (

    {% if destruction_log is not none -%}
        select
            request_id,
            min(destroyed_at) as closed_at
        from {{ source('raw_audit', 'destruction_log') }}
        where reason = 'erasure_request' and request_id is not null
        group by request_id
    {%- else -%}
        select
            cast(null as {{ text_type() }}) as request_id,
            cast(null as timestamp) as closed_at
        where false
    {%- endif %}

),

exports as (

    {% if vault_log is not none -%}
        select
            request_id,
            min(logged_at) as closed_at
        from {{ source('vault_log', 'reidentification_log') }}
        where action = 'access_export' and outcome = 'ok' and request_id is not null
        group by request_id
    {%- else -%}
        select
            cast(null as {{ text_type() }}) as request_id,
            cast(null as timestamp) as closed_at
        where false
    {%- endif %}

),

final as (

    select
        request_id,
        'purge_erasure' as closed_by,
        closed_at
    from destructions
    union all
    select
        request_id,
        'access_export' as closed_by,
        closed_at
    from exports

)

select * from final
