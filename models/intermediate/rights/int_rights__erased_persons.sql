{#-
    Persons whose data is to be destroyed, as of `as_of`: one row per person
    and verified erasure request through an identifier that is theirs alone.
    Every output already excludes them from the next build
    (int_consent__person_restrictions, verified or not); this list is what the
    purge (`scripts/purge.py`) destroys in the raw zone and the vault, keeping
    only what a legal obligation needs (orders, minimised; the requests
    themselves). An unverified request destroys nothing: it is reported by
    int_rights__request_tracking.
-#}
with subject_requests as (

    select * from {{ ref('stg_privacy__subject_requests') }}

),

request_persons as (

    select * from {{ ref('int_rights__request_persons') }}

),

final as (

    select
        request_persons.person_key,
        subject_requests.request_id,
        subject_requests.jurisdiction,
        subject_requests.received_at,
        {{ as_of() }} as as_of
    from subject_requests
    inner join request_persons
        on subject_requests.request_id = request_persons.request_id
    where
        subject_requests.request_type = 'erasure'
        and subject_requests.is_verified
        and request_persons.is_unambiguous
        and subject_requests.received_at <= {{ as_of() }}

)

select * from final
