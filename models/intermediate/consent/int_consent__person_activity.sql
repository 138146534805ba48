{#-
    Each person's last activity as of `as_of`, for the inactivity limit of the
    customer record (seed data_categories, customer_master_data): an order, a
    consent grant, or the creation or an update of their CRM record. Only
    evidence kept at least as long as the limit counts: site visits and message
    opens are destroyed after 13 and 24 months, and a verdict that changed when
    they are purged would make the purge destroy more on every run
    (docs/decisions.md, "Retention"). The same holds for the evidence that
    makes an identifier the person's: a grant through a device the person is
    linked to only by logins on it does not count (decision 71). A person inactive for longer than the
    limit is not active: they leave the profile and the audiences, and the
    purge depersonalises their raw records.
-#}
with customers as {{ inline_cte() }} (

    select * from {{ ref('stg_crm__customers') }}

),

orders as {{ inline_cte() }} (

    select * from {{ ref('stg_shop__orders') }}

),

person_events as (

    select * from {{ ref('int_consent__person_events') }}

),

subject_persons as {{ inline_cte() }} (

    select * from {{ ref('int_consent__subject_persons') }}

),

data_categories as (

    select * from {{ ref('data_categories') }}

),

keyed_activity as (

    select
        customer_key as subject_key,
        created_at as activity_at,
        'crm_record_created' as activity_source
    from customers
    union all
    select
        customer_key as subject_key,
        updated_at as activity_at,
        'crm_record_updated' as activity_source
    from customers
    union all
    select
        customer_key as subject_key,
        ordered_at as activity_at,
        'order' as activity_source
    from orders
    union all
    select
        email_key as subject_key,
        ordered_at as activity_at,
        'order' as activity_source
    from orders
    union all
    select
        phone_key as subject_key,
        ordered_at as activity_at,
        'order' as activity_source
    from orders

),

person_activity as (

    select
        subject_persons.person_key,
        keyed_activity.activity_at,
        keyed_activity.activity_source
    from keyed_activity
    inner join subject_persons
        on keyed_activity.subject_key = subject_persons.subject_key
    where
        subject_persons.is_unambiguous
        and keyed_activity.activity_at <= {{ as_of() }}
    union all
    -- a grant through a device attached by site visits only (a login on it) is not the
    -- person's activity: the login that makes the device theirs is destroyed after 13
    -- months, and the verdict would change then (decision 71); a device that is a
    -- person of its own is active through its own grants
    select
        person_events.person_key,
        person_events.effective_at as activity_at,
        'consent_grant' as activity_source
    from person_events
    inner join subject_persons
        on
            person_events.subject_key = subject_persons.subject_key
            and person_events.person_key = subject_persons.person_key
    where
        person_events.action = 'grant'
        and subject_persons.link_rule not in ('identity_attached_device', 'web_login')

),

inactivity_limit as (

    select retention_days from data_categories
    where data_category = 'customer_master_data'

),

summarised as (

    select
        person_key,
        min(activity_at) as first_seen_at,
        max(activity_at) as last_activity_at,
        -- on a tie (a CRM record created and updated at the same moment) the greatest
        -- source name, so the same data always gives the same row
        {{ value_at_max('activity_source', ['activity_at', 'activity_source']) }} as last_activity_source
    from person_activity
    group by person_key

),

final as (

    select
        summarised.person_key,
        summarised.first_seen_at,
        summarised.last_activity_at,
        summarised.last_activity_source,
        inactivity_limit.retention_days as inactivity_limit_days,
        summarised.last_activity_at >= {{ retention_cutoff('inactivity_limit.retention_days') }} as is_active,
        {{ as_of() }} as as_of
    from summarised
    cross join inactivity_limit

)

select * from final
