{#-
    Consent validity intervals per person and purpose, as of `as_of`: the
    ledger every purpose-serving output and the consent_presence test read.
    One row per interval; valid_to is null while consent is in force.
-#}
with person_events as (

    select * from {{ ref('int_consent__person_events') }}

),

intervals as (

    {{ consent_intervals('person_events', ['person_key', 'purpose_code']) }}

),

final as (

    select
        intervals.person_key || ':' || intervals.purpose_code || ':' || intervals.interval_number as consent_interval_id,
        intervals.person_key,
        intervals.purpose_code,
        intervals.interval_number,
        intervals.valid_from,
        intervals.valid_to,
        intervals.grant_event_id,
        intervals.grant_channel,
        intervals.policy_version,
        intervals.evidence_ref,
        intervals.reaffirmation_count,
        intervals.last_granted_at,
        intervals.last_policy_version,
        intervals.withdraw_event_id,
        intervals.withdraw_origin,
        intervals.withdraw_channel,
        intervals.withdraw_evidence_ref,
        {{ consent_valid_at('intervals', as_of()) }} as is_valid_as_of,
        {{ as_of() }} as as_of
    from intervals

)

select * from final
