{{ config(materialized='ephemeral') }}

{#-
    Every event a person-level output may count, one row per event: orders,
    message events and site events, attributed to a person through an
    identifier that belongs to that person alone, that happened by as_of and
    are within their data category's retention window. No purpose is applied
    here: each output keeps the events of its own purpose's consent intervals
    (macro events_under_consent). Ephemeral: the profile and the BI inputs
    share the logic, not a copy of the biggest table.
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

data_categories as (

    select * from {{ ref('data_categories') }}

),

source_events as (

    select
        'order' as event_source,
        order_key as event_key,
        coalesce(customer_key, email_key, phone_key) as subject_key,
        status as event_type,
        ordered_at as event_at,
        channel,
        cast(null as {{ text_type() }}) as campaign_id,
        cast(null as {{ text_type() }}) as device_class,
        total_amount as order_amount,
        currency as order_currency,
        'purchase_history' as data_category
    from orders
    union all
    select
        'message' as event_source,
        message_event_key as event_key,
        coalesce(customer_key, recipient_key) as subject_key,
        event_type,
        event_at,
        channel,
        campaign_id,
        cast(null as {{ text_type() }}) as device_class,
        cast(null as decimal(12, 2)) as order_amount,
        cast(null as {{ text_type() }}) as order_currency,
        'communication_activity' as data_category
    from message_events
    union all
    select
        'site' as event_source,
        event_key,
        coalesce(customer_key, anonymous_key) as subject_key,
        event_type,
        event_at,
        cast(null as {{ text_type() }}) as channel,
        cast(null as {{ text_type() }}) as campaign_id,
        device_class,
        cast(null as decimal(12, 2)) as order_amount,
        cast(null as {{ text_type() }}) as order_currency,
        'site_activity' as data_category
    from web_events

),

final as (

    select
        source_events.*,
        subject_persons.person_key
    from source_events
    inner join subject_persons
        on source_events.subject_key = subject_persons.subject_key
    inner join data_categories
        on source_events.data_category = data_categories.data_category
    where
        subject_persons.is_unambiguous
        and source_events.event_at <= {{ as_of() }}
        and source_events.event_at >= {{ retention_cutoff('data_categories.retention_days') }}

)

select * from final
