{#- The consent log, one row per consent event (consent_event_key), subjects pseudonymised. -#}
with triaged as (

    select * from {{ ref('stg_privacy__consent_events_triaged') }}

),

final as (

    select
        consent_event_key,
        subject_id_type,
        subject_key,
        purpose_code,
        action,
        channel,
        policy_version,
        evidence_ref,
        captured_at,
        data_issues,
        key_version,
        _batch_id,
        _loaded_at
    from triaged
    where row_status = 'kept'

)

select * from final
