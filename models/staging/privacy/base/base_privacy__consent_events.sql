{{ config(materialized='ephemeral') }}

{#-
    In-flight only (ephemeral): the consent log typed, normalised and triaged.
    The subject's identifier is normalised by its declared type; an event for
    a purpose the catalogue does not know is quarantined.
-#}
with source as (

    select * from {{ source('privacy', 'consent_events') }}

),

purposes as (

    select * from {{ ref('purposes') }}

),

normalised as (

    select
        {{ normalise_key('source.consent_event_id') }} as consent_event_id,
        {{ clean_id_type('source.subject_id_type') }} as subject_id_type,
        {{ normalise_identifier(clean_id_type('source.subject_id_type'), 'source.subject_id') }} as subject_id_normalised,
        lower(trim(source.purpose_code)) as purpose_code,
        purposes.purpose_code is not null as is_known_purpose,
        lower(trim(source.action)) as action,  -- noqa: RF04
        lower(trim(source.channel)) as channel,
        nullif(trim(source.policy_version), '') as policy_version,
        nullif(trim(source.evidence_ref), '') as evidence_ref,
        source.captured_at,
        source._loaded_at,
        source._batch_id,
        {{ row_fingerprint(['source.consent_event_id', 'source.subject_id_type', 'source.subject_id',
            'source.purpose_code', 'source.action', 'source.channel', 'source.policy_version',
            'source.evidence_ref', 'source.captured_at']) }} as _row_fingerprint
    from source
    left join purposes
        on lower(trim(source.purpose_code)) = purposes.purpose_code

),

triaged as (

    {{ triage(
        from_cte='normalised',
        reject_reason="case
            when consent_event_id is null then 'missing_key'
            when subject_id_type is null then 'unknown_subject_id_type'
            when subject_id_normalised is null then 'invalid_subject_id'
            when not is_known_purpose then 'unknown_purpose'
            when action is null or action not in (" ~ accepted_values_sql('consent_actions') ~ ") then 'unknown_action'
            when captured_at is null then 'missing_timestamp'
        end",
        copy_columns=['consent_event_id'],
        key_columns=['consent_event_id'],
        version_order='_loaded_at'
    ) }}

)

select * from triaged
