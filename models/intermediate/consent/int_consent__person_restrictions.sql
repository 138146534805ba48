{#-
    Persons whose data may not be processed for any purpose, as of `as_of`:
    one row per person and restriction or erasure request (GDPR 17, 18;
    152-FZ art. 21). A request counts from receipt whether or not the
    requester was verified (excluding someone is the safe side; destroying
    data waits for verification) and through an ambiguous identifier for every
    person it may belong to. The contract has no request that lifts a
    restriction, so a restriction stays in effect; these requests are kept
    (not purged) while in effect.
-#}
with subject_requests as (

    select * from {{ ref('stg_privacy__subject_requests') }}

),

subject_persons as (

    select * from {{ ref('int_consent__subject_persons') }}

),

final as (

    select distinct
        subject_persons.person_key,
        subject_requests.request_key,
        subject_requests.request_type,
        subject_requests.received_at as restricted_since,
        subject_requests.is_verified,
        {{ as_of() }} as as_of
    from subject_requests
    inner join subject_persons
        on subject_requests.subject_key = subject_persons.subject_key
    where
        subject_requests.request_type in ('restriction', 'erasure')
        and subject_requests.received_at <= {{ as_of() }}

)

select * from final
