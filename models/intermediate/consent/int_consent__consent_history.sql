{{ config(materialized='ephemeral') }}

{#-
    In-flight only (ephemeral): the whole consent history per identifier as of
    `as_of`, before retention: the kept consent-log events and the opt-outs
    that act as withdrawals (int_consent__opt_out_events), each with the time
    it counts from. Old episodes are still here because an old withdrawal
    must close the grants before it before either can be left out; the ledger
    models apply retention (consent_records) at their own grain.
-#}
with consent_events as (

    select * from {{ ref('stg_privacy__consent_events') }}

),

opt_out_events as (

    select * from {{ ref('int_consent__opt_out_events') }}

),

unioned as (

    select
        consent_event_key as consent_event_id,
        subject_id_type,
        subject_key,
        purpose_code,
        action,
        'consent_log' as event_origin,
        channel,
        policy_version,
        evidence_ref,
        captured_at,
        _loaded_at,
        _batch_id
    from consent_events
    union all
    select
        consent_event_id,
        subject_id_type,
        subject_key,
        purpose_code,
        action,
        event_origin,
        channel,
        policy_version,
        evidence_ref,
        captured_at,
        _loaded_at,
        _batch_id
    from opt_out_events

),

final as (

    select
        consent_event_id,
        subject_id_type,
        subject_key,
        purpose_code,
        action,
        event_origin,
        channel,
        policy_version,
        evidence_ref,
        captured_at,
        _loaded_at,
        _batch_id,
        -- A subject cannot act after the loader wrote the event: a later capture time is a clock error.
        least(captured_at, _loaded_at) as effective_at,
        captured_at > _loaded_at as is_capture_time_corrected
    from unioned
    where least(captured_at, _loaded_at) <= {{ as_of() }}

)

select * from final
