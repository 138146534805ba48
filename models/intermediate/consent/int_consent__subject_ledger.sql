{#-
    Consent validity intervals per identifier (subject) and purpose, as of
    `as_of`: one row per interval, from the grant that opened it to the
    withdrawal that closed it (null while in force), with how and under which
    policy version consent was captured and the evidence reference.
-#}
with subject_events as (

    select * from {{ ref('int_consent__subject_events') }}

),

intervals as (

    {{ consent_intervals('subject_events', ['subject_id_type', 'subject_key', 'purpose_code']) }}

),

final as (

    select
        intervals.subject_key || ':' || intervals.purpose_code || ':' || intervals.interval_number as consent_interval_id,
        intervals.subject_id_type,
        intervals.subject_key,
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
