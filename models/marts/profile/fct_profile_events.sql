{{ config(materialized='table', schema='marts') }}

{#-
    The activity the customer profile is built from, one row per event:
    orders, message events and site events of people who may be profiled.
    An event is here only if the person may be profiled as of `as_of`
    (int_consent__profiled_persons), the person's consent was also in
    force when the event happened (requirement 4), the event happened by
    as_of, and it is within its data category's retention window. An event is
    attributed through an identifier that belongs to one person only.
-#}
with orders as (

    select * from {{ ref('stg_shop__orders') }}

),

message_events as (

    select * from {{ ref('stg_messaging__message_events') }}

),

web_events as (

    select * from {{ ref('stg_web__events') }}

),

subject_persons as (

    select * from {{ ref('int_consent__subject_persons') }}

),

person_ledger as (

    select * from {{ ref('int_consent__person_ledger') }}

),

profiled_persons as (

    select * from {{ ref('int_consent__profiled_persons') }}

),

data_categories as (

    select * from {{ ref('data_categories') }}

),

source_events as (

    select
        'order' as event_source,
        order_id as event_id,
        coalesce(customer_key, email_key, phone_key) as subject_key,
        status as event_type,
        ordered_at as event_at,
        channel,
        cast(null as varchar) as device_class,
        total_amount as order_amount,
        currency as order_currency,
        'purchase_history' as data_category
    from orders
    union all
    select
        'message' as event_source,
        message_event_id as event_id,
        coalesce(customer_key, recipient_key) as subject_key,
        event_type,
        event_at,
        channel,
        cast(null as varchar) as device_class,
        cast(null as decimal(12, 2)) as order_amount,
        cast(null as varchar) as order_currency,
        'communication_activity' as data_category
    from message_events
    union all
    select
        'site' as event_source,
        event_id,
        coalesce(customer_key, anonymous_key) as subject_key,
        event_type,
        event_at,
        cast(null as varchar) as channel,
        device_class,
        cast(null as decimal(12, 2)) as order_amount,
        cast(null as varchar) as order_currency,
        'site_activity' as data_category
    from web_events

),

personalisation_intervals as (

    select * from person_ledger
    where purpose_code = 'personalisation'

),

attributed_events as (

    select
        source_events.*,
        subject_persons.person_key
    from source_events
    inner join subject_persons
        on source_events.subject_key = subject_persons.subject_key
    inner join profiled_persons
        on subject_persons.person_key = profiled_persons.person_key
    inner join data_categories
        on source_events.data_category = data_categories.data_category
    where
        subject_persons.is_unambiguous
        and source_events.event_at <= {{ as_of() }}
        and source_events.event_at >= {{ retention_cutoff('data_categories.retention_days') }}

),

consented_events as (

    -- Intervals of one person and purpose never overlap: at most one matches an event.
    select attributed_events.*
    from attributed_events
    inner join personalisation_intervals
        on
            attributed_events.person_key = personalisation_intervals.person_key
            and {{ consent_valid_at('personalisation_intervals', 'attributed_events.event_at') }}

),

final as (

    select
        cast(event_source || ':' || event_id as varchar) as profile_event_id,
        cast(person_key as varchar) as person_key,
        cast(event_source as varchar) as event_source,
        cast(event_id as varchar) as event_id,
        cast(event_type as varchar) as event_type,
        cast(event_at as timestamp) as event_at,
        cast(channel as varchar) as channel,
        cast(device_class as varchar) as device_class,
        cast(order_amount as decimal(12, 2)) as order_amount,
        cast(order_currency as varchar) as order_currency,
        cast(data_category as varchar) as data_category,
        cast({{ as_of() }} as timestamp) as as_of
    from consented_events

)

select * from final
