{#-
    Corrected contact identifiers in force, as of `as_of`: one row per person
    and field (email or phone), from the latest verified rectification request
    through an identifier that is the person's alone. The value is a pseudonym
    (staging never keeps the plaintext); int_consent__person_contacts sends
    to it instead of the identifier on record. Rectified names and addresses
    never leave the raw zone: the access export shows them.
-#}
with subject_requests as (

    select * from {{ ref('stg_privacy__subject_requests') }}

),

request_persons as (

    select * from {{ ref('int_rights__request_persons') }}

),

verified as (

    select
        request_persons.person_key,
        subject_requests.request_id,
        subject_requests.rectification_field,
        subject_requests.rectification_value_key,
        subject_requests.received_at
    from subject_requests
    inner join request_persons
        on subject_requests.request_id = request_persons.request_id
    where
        subject_requests.request_type = 'rectification'
        and subject_requests.is_verified
        and request_persons.is_unambiguous
        and subject_requests.rectification_field in ('email', 'phone')
        and subject_requests.rectification_value_key is not null
        and subject_requests.received_at <= {{ as_of() }}

),

final as (

    select
        person_key,
        rectification_field,
        {{ value_at_max('rectification_value_key', ['received_at', 'request_id']) }} as rectified_value_key,
        {{ value_at_max('request_id', ['received_at', 'request_id']) }} as request_id,
        max(received_at) as rectified_at,
        {{ as_of() }} as as_of
    from verified
    group by person_key, rectification_field

)

select * from final
