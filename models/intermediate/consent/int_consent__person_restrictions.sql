{#-
    Persons whose data may not be processed for any purpose, as of `as_of`:
    one row per person and restriction or erasure request (GDPR 17, 18;
    152-FZ art. 21). A request counts from receipt whether or not the
    requester was verified (excluding someone is the safe side; destroying
    data waits for verification) and through an ambiguous identifier for every
    person it may belong to. The contract has no request that lifts a
    restriction, so a restriction stays in effect; these requests are kept
    (not purged) while in effect, and so is the scope of identifiers the
    purge kept for them (decision 71).
-#}
with subject_requests as {{ inline_cte() }} (

    select * from {{ ref('stg_privacy__subject_requests') }}

),

subject_persons as {{ inline_cte() }} (

    select * from {{ ref('int_consent__subject_persons') }}

),

consent_scopes as (

    select * from {{ ref('stg_rights__consent_scopes') }}

),

requests as (

    select *
    from subject_requests
    where
        request_type in ('restriction', 'erasure')
        and received_at <= {{ as_of() }}

),

-- the persons a request reaches: those of its identifier, and those of every identifier
-- of the scope the purge kept for it (decision 71), once the evidence linking them is gone
reached as (

    select
        subject_persons.person_key,
        requests.request_key
    from requests
    inner join subject_persons
        on requests.subject_key = subject_persons.subject_key
    union
    select
        subject_persons.person_key,
        requests.request_key
    from requests
    inner join consent_scopes
        on
            consent_scopes.scope_kind = 'restriction'
            and requests.request_key = consent_scopes.event_id
    inner join subject_persons
        on consent_scopes.member_key = subject_persons.subject_key

),

final as (

    select distinct
        reached.person_key,
        requests.request_key,
        requests.request_type,
        requests.received_at as restricted_since,
        requests.is_verified,
        {{ as_of() }} as as_of
    from reached
    inner join requests
        on reached.request_key = requests.request_key

)

select * from final
