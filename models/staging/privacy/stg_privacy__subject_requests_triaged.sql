{#-
    Every raw subject-request row with its triage status. The subject is
    pseudonymised; of the details only what is not personal data is kept (the
    field to rectify, the purpose objected to). A rectified value is itself
    personal data: it is pseudonymised when it is an identifier and otherwise
    stays in the raw zone. A request whose identifier names nobody usable
    (`subject_issue`) or that the erasure command anonymised
    (`is_subject_erased`) is kept with no subject_key (decision 51).

    request_id is the privacy desk's handle of the request and stays as it is, for
    the privacy officer's rights models only (docs/decisions.md, 50); request_key,
    its keyed pseudonym (id type request_id), is what every other model uses.
-#}
with requests as (

    select * from {{ ref('base_privacy__subject_requests') }}

),

details as (

    select
        *,
        case when is_details_valid then lower(trim(json_extract_string(details, '$.field'))) end as details_field,
        case when is_details_valid then json_extract_string(details, '$.value') end as details_value,
        case when is_details_valid then lower(trim(json_extract_string(details, '$.purpose_code'))) end as details_purpose_code
    from requests

),

final as (

    select
        _batch_id,
        _loaded_at,
        row_status,
        reject_reason,
        request_id,
        {{ pseudonymise("'request_id'", 'request_id') }} as request_key,
        subject_id_type,
        {{ pseudonymise('subject_id_type', 'subject_id_normalised') }} as subject_key,
        subject_issue,
        is_subject_erased,
        erased_by_request_id,
        request_type,
        jurisdiction,
        received_at,
        is_verified,
        is_details_valid,
        case when request_type = 'rectification' then details_field end as rectification_field,
        case
            when request_type = 'rectification' and details_field = 'email'
                then {{ pseudonymise("'email'", normalise_email('details_value')) }}
            when request_type = 'rectification' and details_field = 'phone'
                then {{ pseudonymise("'phone'", normalise_phone('details_value')) }}
        end as rectification_value_key,
        case when request_type = 'objection' then details_purpose_code end as objection_purpose_code,
        {{ issue_list({
            'invalid_details_json': 'not is_details_valid',
            'unverified': 'not is_verified',
        }) }} as data_issues,
        {{ key_version() }} as key_version
    from details

)

select * from final
