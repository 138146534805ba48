{#-
    The consent scopes the purge kept (raw audit.consent_scopes, written before
    it destroys evidence that linked a person's identifiers; docs/decisions.md,
    71), one row per judged event and identifier pseudonym of its scope:

      withdrawal       a withdrawal or opt-out reached these identifiers: the
                       ledger applies it to every person of its scope
      restriction      a restriction or erasure request excluded them
      ambiguous_grant  a grant made through an identifier shared by several
                       persons: it counts for none of them

    They only ever take consent away: no scope joins persons for a grant, the
    profile or activity. Pseudonyms and keyed ids only, as the purge wrote
    them; read only when the table exists (once a purge kept a scope). A
    withdrawal's scope counts while the withdrawal does (consent_records).

    A table, not a view: the analytics stage reads it, and only the privacy
    stage attaches the raw zone. The log is declared below, where dbt sees it
    at parse time (it does not run the `execute` branch).
-#}
{{ config(materialized='table') }}
-- depends_on: {{ source('raw_audit', 'consent_scopes') }}
{%- set scopes = none -%}
{%- if execute -%}
    {%- set scope_source = source('raw_audit', 'consent_scopes') -%}
    {%- set scopes = adapter.get_relation(
        database=scope_source.database, schema=scope_source.schema, identifier='consent_scopes') -%}
{%- endif %}

with scopes as (

    {% if scopes is not none -%}
        select
            scope_kind,
            event_id,
            purpose_code,
            event_at,
            member_id_type,
            member_key,
            keep_until
        from {{ source('raw_audit', 'consent_scopes') }}
    {%- else -%}
        select
            cast(null as {{ text_type() }}) as scope_kind,
            cast(null as {{ text_type() }}) as event_id,
            cast(null as {{ text_type() }}) as purpose_code,
            cast(null as timestamp) as event_at,
            cast(null as {{ text_type() }}) as member_id_type,
            cast(null as {{ text_type() }}) as member_key,
            cast(null as timestamp) as keep_until
        where false
    {%- endif %}

),

data_categories as (

    select * from {{ ref('data_categories') }}

),

retention as (

    select retention_days from data_categories
    where data_category = 'consent_records'

),

final as (

    select distinct
        scopes.scope_kind,
        scopes.event_id,
        scopes.purpose_code,
        scopes.event_at,
        scopes.member_id_type,
        scopes.member_key,
        scopes.keep_until,
        case when scopes.scope_kind = 'withdrawal' then scopes.event_at end as retained_since
    from scopes
    cross join retention
    where
        scopes.scope_kind <> 'withdrawal'
        or scopes.event_at >= {{ retention_cutoff('retention.retention_days') }}

)

select * from final
