{#-
    Every raw subject-request row with its triage status. The subject is
    pseudonymised; of the details only what is not personal data is kept (the
    field to rectify, the purpose objected to). A rectified value is itself
    personal data: it is pseudonymised when it is an identifier and otherwise
    stays in the raw zone.

    request_id is the privacy desk's handle of the request and stays as it is, for
    the privacy officer's rights models only (docs/decisions.md, 50); request_key,
    its keyed pseudonym (id type request_id), is what every other model uses.

    In flight, before pseudonymisation: requests typed, normalised and triaged.
    A request is a person's right: broken details JSON does not quarantine it,
    and neither does an identifier that names nobody (decision 51). Such a
    request is kept with `subject_issue` set and no subject_key, so it is
    tracked (needs review, deadline running) but never executed:

      missing_subject_id        no identifier at all
      unknown_subject_id_type   a type that is not customer_id, email, phone or anonymous_id
      identifier_type_mismatch  the value is recognisably of another type: an email or a
                                +phone given as a customer id or token; a value that is no
                                email (phone) but is a phone number, an email or shaped like
                                an opaque key (letters and digits) given as an email (phone)
      invalid_identifier        not a valid identifier of its type, and nothing else either

    A row the erasure command anonymised (`subject_id` = `erased-by:<request_id>`)
    is kept with is_subject_erased and erased_by_request_id (and no subject_key);
    the marker is no identifier and is never normalised or pseudonymised.

    A table, not incremental: the erasure rewrites requests in place (identifier
    replaced, details nulled), which the batch counts of the incremental triage
    cannot see; every build triages every request (docs/decisions.md, 56).
-#}
{%- set group_keys = {'request_id': normalise_key('raw_rows.request_id')} %}
{{ config(materialized='table') }}
with

{{ triage_source(source('privacy', 'subject_requests'), group_keys) }},

typed as (

    select
        {{ normalise_key('request_id') }} as request_id,
        {{ clean_id_type('subject_id_type') }} as subject_id_type,
        {{ normalise_key('subject_id') }} as subject_id_trimmed,
        coalesce({{ text_starts_with('trim(subject_id)', "'erased-by:'") }}, false) as is_subject_erased,
        subject_id,
        lower(trim(request_type)) as request_type,
        upper(trim(jurisdiction)) as jurisdiction,
        received_at,
        details,
        {{ json_is_valid('details') }} as is_details_valid,
        coalesce(is_verified, false) as is_verified,
        _loaded_at,
        _batch_id,
        {{ triage_fingerprint(['request_id', 'subject_id_type', 'subject_id', 'request_type',
            'jurisdiction', 'received_at', 'details', 'is_verified']) }} as _row_fingerprint
    from triage_rows

),

-- The normalisers run in Python: once per distinct identifier and declared type
-- (a person's requests name them alike), joined back by value.
subject_ids as (

    select
        subject_id_type,
        subject_id,
        case
            when not is_subject_erased
                then {{ normalise_identifier('subject_id_type', 'subject_id') }}
        end as subject_id_as_typed,
        case when not is_subject_erased then {{ normalise_email('subject_id') }} end as subject_id_as_email,
        case
            when not is_subject_erased then {{ normalise_phone('subject_id') }}
        end as subject_id_as_phone
    from (
        select distinct
            subject_id_type,
            subject_id,
            is_subject_erased
        from typed
    ) as distinct_values

),

shaped as (

    select
        typed.*,
        subject_ids.subject_id_as_typed,
        subject_ids.subject_id_as_email,
        subject_ids.subject_id_as_phone,
        coalesce({{ regexp_full_match('typed.subject_id_trimmed', '\\+[0-9][0-9 ()-]*') }}, false) as is_plus_phone_shaped,
        coalesce(
            {{ regexp_full_match('typed.subject_id_trimmed', '[A-Za-z0-9_-]+') }}
            and {{ regexp_contains('typed.subject_id_trimmed', '[0-9]') }}
            and {{ regexp_contains('typed.subject_id_trimmed', '[A-Za-z]') }},
            false
        ) as is_key_shaped
    from typed
    left join subject_ids
        on typed.subject_id_type is not distinct from subject_ids.subject_id_type
            and typed.subject_id is not distinct from subject_ids.subject_id

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

),

requests as (

    select
        *,
        case when is_details_valid then lower(trim({{ json_extract_text('details', '$.field') }})) end as details_field,
        case when is_details_valid then {{ json_extract_text('details', '$.value') }} end as details_value,
        case when is_details_valid then lower(trim({{ json_extract_text('details', '$.purpose_code') }})) end as details_purpose_code
    from triaged

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
    from requests

)

select * from final
{{ triage_scope_markers(group_keys) }}
