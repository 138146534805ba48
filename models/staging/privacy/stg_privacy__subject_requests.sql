{#-
    Data-subject requests, one row per request_id, subjects pseudonymised. A
    request whose identifier is unusable (subject_issue) or was erased
    (is_subject_erased) has no subject_key: it is tracked, never executed.
-#}
with triaged as (

    select * from {{ ref('stg_privacy__subject_requests_triaged') }}

),

final as (

    select
        request_id,
        request_key,
        subject_id_type,
        subject_key,
        subject_issue,
        is_subject_erased,
        erased_by_request_id,
        request_type,
        jurisdiction,
        received_at,
        is_verified,
        is_details_valid,
        rectification_field,
        rectification_value_key,
        objection_purpose_code,
        data_issues,
        key_version,
        _batch_id,
        _loaded_at
    from triaged
    where row_status = 'kept'

)

select * from final
