{{ config(materialized='ephemeral') }}

{#-
    In-flight only (ephemeral): subject requests typed, normalised and triaged.
    A request is a person's right: broken details JSON does not quarantine it,
    it is kept and flagged for the privacy desk.
-#}
with source as (

    select * from {{ source('privacy', 'subject_requests') }}

),

normalised as (

    select
        {{ normalise_key('request_id') }} as request_id,
        {{ clean_id_type('subject_id_type') }} as subject_id_type,
        {{ normalise_identifier(clean_id_type('subject_id_type'), 'subject_id') }} as subject_id_normalised,
        lower(trim(request_type)) as request_type,
        upper(trim(jurisdiction)) as jurisdiction,
        received_at,
        details,
        coalesce(try(json_valid(details)), false) as is_details_valid,
        coalesce(is_verified, false) as is_verified,
        _loaded_at,
        _batch_id,
        {{ row_fingerprint(['request_id', 'subject_id_type', 'subject_id', 'request_type',
            'jurisdiction', 'received_at', 'details', 'is_verified']) }} as _row_fingerprint
    from source

),

triaged as (

    {{ triage(
        from_cte='normalised',
        reject_reason="case
            when request_id is null then 'missing_key'
            when subject_id_type is null then 'unknown_subject_id_type'
            when subject_id_normalised is null then 'invalid_subject_id'
            when request_type is null or request_type not in (" ~ accepted_values_sql('request_types') ~ ") then 'unknown_request_type'
            when jurisdiction is null or jurisdiction not in (" ~ accepted_values_sql('jurisdictions') ~ ") then 'unknown_jurisdiction'
            when received_at is null then 'missing_timestamp'
        end",
        copy_columns=['request_id'],
        key_columns=['request_id'],
        version_order='_loaded_at'
    ) }}

)

select * from triaged
