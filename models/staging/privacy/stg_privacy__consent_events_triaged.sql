{#-
    Every raw consent-log row with its triage status; the subject is pseudonymised.

    In flight, before pseudonymisation: the consent log typed, normalised and triaged.
    The subject's identifier is normalised by its declared type; an event for
    a purpose the catalogue does not know is quarantined.

    The raw event id and evidence reference stay in flight: both are staged as
    keyed pseudonyms (id types consent_event_id, consent_evidence_ref), so no
    staged row joins back to the raw zone (docs/decisions.md, 50).

    Incremental: a run triages again only the groups (rows sharing a key) with a
    row in a new or purged batch (macros/staging/incremental.sql).
-#}
{%- set group_keys = {'consent_event_key': normalise_key('raw_rows.consent_event_id')} %}
{%- set pseudonymised_keys = {'consent_event_key': 'consent_event_id'} %}
{{ config(materialized='incremental', unique_key=group_keys.keys() | list) }}
with

{{ triage_source(source('privacy', 'consent_events'), group_keys, pseudonymised_keys) }},

purposes as {{ inline_cte() }} (

    select * from {{ ref('purposes') }}

),

-- The normalisers run in Python: once per distinct identifier and declared type
-- (a person consents to several purposes), joined back by value.
subject_ids as (

    select
        subject_id_type,
        subject_id,
        {{ normalise_identifier(clean_id_type('subject_id_type'), 'subject_id') }} as subject_id_normalised
    from (
        select distinct
            subject_id_type,
            subject_id
        from source
    ) as distinct_values

),

normalised as {{ inline_cte() }} (

    select
        {{ normalise_key('source.consent_event_id') }} as consent_event_id,
        {{ clean_id_type('source.subject_id_type') }} as subject_id_type,
        subject_ids.subject_id_normalised,
        lower(trim(source.purpose_code)) as purpose_code,
        purposes.purpose_code is not null as is_known_purpose,
        lower(trim(source.action)) as action,  -- noqa: RF04
        lower(trim(source.channel)) as channel,
        nullif(trim(source.policy_version), '') as policy_version,
        nullif(trim(source.evidence_ref), '') as evidence_ref,
        source.captured_at,
        source._loaded_at,
        source._batch_id,
        {{ triage_fingerprint(['source.consent_event_id', 'source.subject_id_type', 'source.subject_id',
            'source.purpose_code', 'source.action', 'source.channel', 'source.policy_version',
            'source.evidence_ref', 'source.captured_at']) }} as _row_fingerprint
    from triage_rows as source  -- noqa: RF04
    left join subject_ids
        on source.subject_id_type is not distinct from subject_ids.subject_id_type
            and source.subject_id is not distinct from subject_ids.subject_id
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

),

consent_events as (

    select * from triaged

),

final as (

    select
        _batch_id,
        _loaded_at,
        row_status,
        reject_reason,
        {{ pseudonymise("'consent_event_id'", 'consent_event_id') }} as consent_event_key,
        subject_id_type,
        {{ pseudonymise('subject_id_type', 'subject_id_normalised') }} as subject_key,
        purpose_code,
        action,
        case
            when channel in ({{ accepted_values_sql('consent_channels') }}) then channel
            else 'other'
        end as channel,
        policy_version,
        {{ pseudonymise("'consent_evidence_ref'", 'evidence_ref') }} as evidence_ref,
        captured_at,
        {{ issue_list({
            'unknown_channel': "channel is null or channel not in (" ~ accepted_values_sql('consent_channels') ~ ")",
            'missing_evidence': 'evidence_ref is null',
            'missing_policy_version': 'policy_version is null',
        }) }} as data_issues,
        {{ key_version() }} as key_version
    from consent_events

)

select * from final
{{ triage_scope_markers(group_keys) }}
