{{ config(tags=['privacy_stage'], pre_hook="{{ require_stage() }}") }}
{#-
    The identity interface of the consent ledger: which person each identifier
    pseudonym (subject_key) belongs to, one row per identifier and candidate
    person. Everything in the consent area (ledger, opt-outs, activity,
    contacts, profile, audiences) and the purge read persons from here only.

    var consent_identity_map:
      identity (default)  identity resolution (int_consent__subject_persons_identity)
      fallback            a person per CRM customer (int_consent__subject_persons_fallback)
-#}
{%- set identity_map = var('consent_identity_map', 'identity') -%}
{%- if identity_map not in ['identity', 'fallback'] -%}
    {{ exceptions.raise_compiler_error("consent_identity_map must be 'identity' or 'fallback'") }}
{%- endif %}

with identity_map as (

    select * from {{ ref('int_consent__subject_persons_' ~ identity_map) }}

),

final as (

    select
        subject_id_type,
        subject_key,
        person_key,
        link_rule,
        link_priority,
        candidate_person_count,
        is_unambiguous
    from identity_map

)

select * from final
