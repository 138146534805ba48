{#-
    Every data-subject request as of `as_of`, one row per request: who it is
    about, when it was received, when it is due by law (seed rights_deadlines:
    152-FZ in working days of the Russian production calendar, destruction in
    calendar days; GDPR one month), whether and when it was closed, and
    whether it is overdue. Closed means: executed by a build (restriction,
    objection, rectification: int_rights__request_executions), data destroyed
    by the purge (erasure) or exported by the privacy officer (access,
    portability; stg_rights__request_closures), or, for a subject the erasure
    command anonymised, ended by that erasure (closed_by `erasure`).

    A request is executed only through an identifier that resolves to one
    known person (decision 51). Otherwise it is `needs_review`, never closed,
    its deadline running and counted as overdue, and review_reason says why:
    the identifier's subject_issue from staging (identifier_type_mismatch,
    invalid_identifier, missing_subject_id, unknown_subject_id_type),
    unknown_subject (no person the data holds), shared_identifier (several
    candidates) or subject_erased (an access or portability request of a
    person already erased, never exported). Unverified requests are not
    executed and are reported (status `unverified`); so are rectifications
    whose details cannot be read (`invalid_details`). Deadlines run from the
    UTC date of receipt; the count starts the next day.
-#}
with subject_requests as {{ inline_cte() }} (

    select * from {{ ref('stg_privacy__subject_requests') }}

),

request_persons as (

    select * from {{ ref('int_rights__request_persons') }}

),

deadlines as (

    select * from {{ ref('rights_deadlines') }}

),

calendar as {{ inline_cte() }} (

    select * from {{ ref('int_rights__calendar') }}

),

executions as (

    select * from {{ ref('int_rights__request_executions') }}

),

closures as {{ inline_cte() }} (

    select * from {{ ref('stg_rights__request_closures') }}

),

requests as (

    select
        *,
        cast(received_at as date) as received_date
    from subject_requests
    where received_at <= {{ as_of() }}

),

persons as (

    select
        request_id,
        count(distinct person_key) as candidate_person_count,
        min(person_key) filter (where is_unambiguous) as person_key
    from request_persons
    group by request_id

),

due as (

    select
        requests.request_id,
        deadlines.deadline_count,
        deadlines.deadline_unit,
        deadlines.legal_reference,
        case deadlines.deadline_unit
            when 'working_days' then due_day.calendar_date
            when 'calendar_days' then requests.received_date + deadlines.deadline_count
            when 'months' then {{ date_add_months('requests.received_date', 'deadlines.deadline_count') }}
        end as due_date
    from requests
    left join deadlines
        on
            requests.jurisdiction = deadlines.jurisdiction
            and requests.request_type = deadlines.request_type
    left join calendar as received_day
        on requests.received_date = received_day.calendar_date
    left join calendar as due_day
        on
            deadlines.deadline_unit = 'working_days'
            and due_day.is_working_day
            and due_day.working_day_number = received_day.working_day_number + deadlines.deadline_count

),

-- why a request cannot be executed on its own subject (decision 51)
reviews as (

    select
        requests.request_id,
        case
            when requests.is_subject_erased then 'subject_erased'
            when requests.subject_issue is not null then requests.subject_issue
            when persons.request_id is null then 'unknown_subject'
            when persons.person_key is null then 'shared_identifier'
        end as review_reason
    from requests
    left join persons
        on requests.request_id = persons.request_id

),

closed as (

    select
        requests.request_id,
        executions.executed_at,
        case
            when requests.request_type = 'erasure'
                then coalesce(purged.closed_by, case when erasure_of_subject.closed_at is not null then 'erasure' end)
            when requests.request_type in ('access', 'portability') then exported.closed_by
            -- an execution of a request naming nobody usable (a build before decision 51) closes nothing
            when executions.request_id is not null and requests.subject_issue is null then 'build'
            when erasure_of_subject.closed_at is not null then 'erasure'
        end as closed_by,
        case
            when requests.request_type = 'erasure' then coalesce(purged.closed_at, erasure_of_subject.closed_at)
            when requests.request_type in ('access', 'portability') then exported.closed_at
            when executions.request_id is not null and requests.subject_issue is null then executions.executed_at
            else erasure_of_subject.closed_at
        end as closed_at
    from requests
    left join executions
        on requests.request_id = executions.request_id
    left join closures as purged
        on requests.request_id = purged.request_id and purged.closed_by = 'purge_erasure'
    left join closures as exported
        on requests.request_id = exported.request_id and exported.closed_by = 'access_export'
    -- the erasure that destroyed the subject's data (the erasure command's marker) ends
    -- the person's restriction, objection, rectification and other erasure requests with it
    left join closures as erasure_of_subject
        on
            requests.erased_by_request_id = erasure_of_subject.request_id
            and erasure_of_subject.closed_by = 'purge_erasure'

),

statuses as (

    select
        requests.request_id,
        case
            when closed.closed_at is not null then 'closed'
            when reviews.review_reason is not null then 'needs_review'
            when not requests.is_verified then 'unverified'
            when requests.request_type = 'rectification' and requests.rectification_field is null then 'invalid_details'
            when requests.request_type = 'erasure' then 'awaiting_purge'
            when requests.request_type in ('access', 'portability') then 'awaiting_export'
            else 'awaiting_build'
        end as request_status
    from requests
    inner join closed
        on requests.request_id = closed.request_id
    inner join reviews
        on requests.request_id = reviews.request_id

),

final as (

    select
        requests.request_id,
        requests.request_type,
        requests.jurisdiction,
        requests.subject_id_type,
        persons.person_key,
        coalesce(persons.candidate_person_count, 0) as candidate_person_count,
        requests.is_verified,
        requests.received_at,
        due.deadline_count,
        due.deadline_unit,
        due.legal_reference,
        due.due_date,
        statuses.request_status,
        case when statuses.request_status = 'needs_review' then reviews.review_reason end as review_reason,
        closed.executed_at,
        closed.closed_by,
        closed.closed_at,
        statuses.request_status not in ('closed', 'unverified') as is_open,
        coalesce(
            statuses.request_status not in ('closed', 'unverified')
            and due.due_date < cast({{ as_of() }} as date),
            false
        ) as is_overdue,
        coalesce(cast(closed.closed_at as date) > due.due_date, false) as is_closed_late,
        case
            when statuses.request_status not in ('closed', 'unverified')
                then greatest({{ date_minus_date('cast(' ~ as_of() ~ ' as date)', 'due.due_date') }}, 0)
        end as days_past_due,
        {{ as_of() }} as as_of
    from requests
    inner join statuses
        on requests.request_id = statuses.request_id
    inner join closed
        on requests.request_id = closed.request_id
    inner join due
        on requests.request_id = due.request_id
    inner join reviews
        on requests.request_id = reviews.request_id
    left join persons
        on requests.request_id = persons.request_id

)

select * from final
