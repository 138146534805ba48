{#-
    The consent history per identifier (subject) and purpose, as of `as_of`,
    in the ledger's order, with what each event did to the state
    (consent_event_effects; the conflict rule is in macros/consent/ledger.sql
    and docs/decisions.md, "Consent ledger: the order of events"). A
    withdrawal with no grant before it opens nothing and is kept here as a
    record (consent_effect = 'withdraw_without_grant').

    Retention (consent_records): an event is proof of a consent episode; once
    the first withdrawal at or after it (consent_ended_at) is older than the
    window, the event is left out. The person ledger applies the same rule per
    person (int_consent__person_events), and so does the purge in the raw zone.
-#}
with consent_history as (

    select * from {{ ref('int_consent__consent_history') }}

),

data_categories as (

    select * from {{ ref('data_categories') }}

),

retention as (

    select retention_days from data_categories
    where data_category = 'consent_records'

),

episodes as (

    select
        *,
        -- The first withdrawal at or after this event: when the episode it belongs to ended.
        min(case when action = 'withdraw' then effective_at end) over (
            partition by subject_key, purpose_code
            order by effective_at
            range between current row and unbounded following
        ) as consent_ended_at
    from consent_history

),

retained_events as (

    select episodes.*
    from episodes
    cross join retention
    where
        episodes.consent_ended_at is null
        or episodes.consent_ended_at >= {{ retention_cutoff('retention.retention_days') }}

),

effects as (

    {{ consent_event_effects('retained_events', ['subject_key', 'purpose_code']) }}

),

final as (

    select
        consent_event_id,
        subject_id_type,
        subject_key,
        purpose_code,
        event_sequence,
        action,
        consent_effect,
        previous_action,
        event_origin,
        channel,
        policy_version,
        evidence_ref,
        captured_at,
        effective_at,
        is_capture_time_corrected,
        consent_ended_at,
        _loaded_at,
        _batch_id,
        {{ as_of() }} as as_of
    from effects

)

select * from final
