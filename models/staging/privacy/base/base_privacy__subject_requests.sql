{{ config(materialized='ephemeral') }}

{#-
    In-flight only (ephemeral): subject requests typed, normalised and triaged.
    A request is a person's right: broken details JSON does not quarantine it,
    and neither does an identifier that names nobody (decision 51). Such a
    request is kept with `subject_issue` set and no subject identifier, so it
    is tracked (needs review, deadline running) but never executed:

      missing_subject_id        no identifier at all
      unknown_subject_id_type   a type that is not customer_id, email, phone or anonymous_id
      identifier_type_mismatch  the value is recognisably of another type: an email or a
                                +phone given as a customer id or token; a value that is no
                                email (phone) but is a phone number, an email or shaped like
                                an opaque key (letters and digits) given as an email (phone)
      invalid_identifier        not a valid identifier of its type, and nothing else either

    A row the erasure command anonymised (`subject_id` = `erased-by:<request_id>`)
    is kept with is_subject_erased and erased_by_request_id; the marker is no
    identifier and is never normalised or pseudonymised.
-#}
with source as (

    select * from {{ source('privacy', 'subject_requests') }}

),

typed as (

    select
        {{ normalise_key('request_id') }} as request_id,
        {{ clean_id_type('subject_id_type') }} as subject_id_type,
        {{ normalise_key('subject_id') }} as subject_id_trimmed,
        coalesce(starts_with(trim(subject_id), 'erased-by:'), false) as is_subject_erased,
        subject_id,
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

shaped as (

    select
        *,
        case
            when not is_subject_erased
                then {{ normalise_identifier('subject_id_type', 'subject_id') }}
        end as subject_id_as_typed,
        case when not is_subject_erased then {{ normalise_email('subject_id') }} end as subject_id_as_email,
        case
            when not is_subject_erased then {{ normalise_phone('subject_id') }}
        end as subject_id_as_phone,
        coalesce(regexp_full_match(subject_id_trimmed, '\+[0-9][0-9 ()-]*'), false) as is_plus_phone_shaped,
        coalesce(
            regexp_full_match(subject_id_trimmed, '[A-Za-z0-9_-]+')
            and regexp_matches(subject_id_trimmed, '[0-9]')
            and regexp_matches(subject_id_trimmed, '[A-Za-z]'),
            false
        ) as is_key_shaped
    from typed

),

normalised as (

    select
        request_id,
        subject_id_type,
        is_subject_erased,
        subject_id_as_typed,
        request_type,
        jurisdiction,
        received_at,
        details,
        is_details_valid,
        is_verified,
        _loaded_at,
        _batch_id,
        _row_fingerprint,
        case
            when is_subject_erased then nullif(trim(substr(trim(subject_id), length('erased-by:') + 1)), '')
        end as erased_by_request_id,
        case
            when is_subject_erased then null
            when subject_id_trimmed is null then 'missing_subject_id'
            when subject_id_type is null then 'unknown_subject_id_type'
            when
                subject_id_type in ('customer_id', 'anonymous_id')
                and (subject_id_as_email is not null or (is_plus_phone_shaped and subject_id_as_phone is not null))
                then 'identifier_type_mismatch'
            when
                subject_id_as_typed is null and subject_id_type = 'email'
                and (subject_id_as_phone is not null or is_key_shaped)
                then 'identifier_type_mismatch'
            when
                subject_id_as_typed is null and subject_id_type = 'phone'
                and (subject_id_as_email is not null or is_key_shaped)
                then 'identifier_type_mismatch'
            when subject_id_as_typed is null then 'invalid_identifier'
        end as subject_issue
    from shaped

),

usable as (

    select
        request_id,
        subject_id_type,
        subject_issue,
        is_subject_erased,
        erased_by_request_id,
        request_type,
        jurisdiction,
        received_at,
        details,
        is_details_valid,
        is_verified,
        _loaded_at,
        _batch_id,
        _row_fingerprint,
        case when subject_issue is null and not is_subject_erased then subject_id_as_typed end as subject_id_normalised
    from normalised

),

triaged as (

    {{ triage(
        from_cte='usable',
        reject_reason="case
            when request_id is null then 'missing_key'
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
