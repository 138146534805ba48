{#-
    Every data-subject request as of `as_of`, one row per request: who it is
    about, when it was received, when it is due by law (seed rights_deadlines:
    152-FZ in working days of the Russian production calendar, destruction in
    calendar days; GDPR one month), whether and when it was closed, and
    whether it is overdue. Closed means: executed by a build (restriction,
    objection, rectification: int_rights__request_executions), data destroyed
    by the purge (erasure) or exported by the privacy officer (access,
    portability; stg_rights__request_closures). Unverified requests are not
    executed and are reported here (status `unverified`); so are requests
    through an identifier shared by several persons (`needs_review`) and
    rectifications whose details cannot be read (`invalid_details`).
    Deadlines run from the UTC date of receipt; the count starts the next day.
-#}
with subject_requests as (

    select * from {{ ref('stg_privacy__subject_requests') }}

),

request_persons as (

    select * from {{ ref('int_rights__request_persons') }}

),

deadlines as (

    select * from {{ ref('rights_deadlines') }}

),

calendar as (

    select * from {{ ref('int_rights__calendar') }}

),

executions as (

    select * from {{ ref('int_rights__request_executions') }}

),

closures as (

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
            when 'months' then cast(requests.received_date + to_months(deadlines.deadline_count) as date)
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

closed as (

    select
        requests.request_id,
        executions.executed_at,
        case
            when requests.request_type = 'erasure' then purged.closed_by
            when requests.request_type in ('access', 'portability') then exported.closed_by
            when executions.request_id is not null then 'build'
        end as closed_by,
        case
            when requests.request_type = 'erasure' then purged.closed_at
            when requests.request_type in ('access', 'portability') then exported.closed_at
            else executions.executed_at
        end as closed_at
    from requests
    left join executions
        on requests.request_id = executions.request_id
    left join closures as purged
        on requests.request_id = purged.request_id and purged.closed_by = 'purge_erasure'
    left join closures as exported
        on requests.request_id = exported.request_id and exported.closed_by = 'access_export'

),

statuses as (

    select
        requests.request_id,
        case
            when not requests.is_verified then 'unverified'
            when closed.closed_at is not null then 'closed'
            when requests.request_type = 'rectification' and requests.rectification_field is null then 'invalid_details'
            when persons.person_key is null then 'needs_review'
            when requests.request_type = 'erasure' then 'awaiting_purge'
            when requests.request_type in ('access', 'portability') then 'awaiting_export'
            else 'awaiting_build'
        end as request_status
    from requests
    left join closed
        on requests.request_id = closed.request_id
    left join persons
        on requests.request_id = persons.request_id

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
                then greatest(cast({{ as_of() }} as date) - due.due_date, 0)
        end as days_past_due,
        {{ as_of() }} as as_of
    from requests
    inner join statuses
        on requests.request_id = statuses.request_id
    inner join closed
        on requests.request_id = closed.request_id
    inner join due
        on requests.request_id = due.request_id
    left join persons
        on requests.request_id = persons.request_id

)

select * from final
