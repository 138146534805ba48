{#- Every raw consent-log row with its triage status; the subject is pseudonymised. -#}
with consent_events as (

    select * from {{ ref('base_privacy__consent_events') }}

),

final as (

    select
        _batch_id,
        _loaded_at,
        row_status,
        reject_reason,
        consent_event_id,
        subject_id_type,
        {{ pseudonymise('subject_id_type', 'subject_id_normalised') }} as subject_key,
        purpose_code,
        action,
        case
            when channel in ({{ accepted_values_sql('consent_channels') }}) then channel
            else 'other'
        end as channel,
        policy_version,
        evidence_ref,
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
