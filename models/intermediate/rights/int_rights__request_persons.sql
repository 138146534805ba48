{#-
    Which person each subject request is about, one row per request and
    candidate person (through int_consent__subject_persons, the one identity
    interface). A request through an identifier identity resolution refused
    (shared, junk) has several candidates and is_unambiguous = false: it may
    exclude all of them (decision 14) but destroys or discloses nobody's data.
-#}
with subject_requests as (

    select * from {{ ref('stg_privacy__subject_requests') }}

),

subject_persons as (

    select * from {{ ref('int_consent__subject_persons') }}

),

final as (

    select
        subject_requests.request_id,
        subject_requests.request_type,
        subject_persons.person_key,
        subject_persons.is_unambiguous,
        subject_persons.candidate_person_count,
        subject_persons.link_rule
    from subject_requests
    inner join subject_persons
        on subject_requests.subject_key = subject_persons.subject_key
    where subject_requests.received_at <= {{ as_of() }}

)

select * from final
