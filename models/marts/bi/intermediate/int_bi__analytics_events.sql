{#-
    The events the anonymised marts count, one row per event: orders and
    message events of people in int_bi__analytics_persons, attributed through
    an identifier of that person alone, only while their analytics consent was
    in force at the event time (requirement 4), up to as_of, and within the
    event's data-category retention window. Carries the person's generalised
    age band and region. Person-level, so it stays in the warehouse.
-#}
with retained_events as (

    select * from {{ ref('int_consent__retained_person_events') }}

),

person_ledger as (

    select * from {{ ref('int_consent__person_ledger') }}

),

analytics_persons as (

    select * from {{ ref('int_bi__analytics_persons') }}

),

attributed_events as (

    select
        retained_events.*,
        analytics_persons.age_band,
        analytics_persons.region
    from retained_events
    inner join analytics_persons
        on retained_events.person_key = analytics_persons.person_key
    where retained_events.event_source in ('order', 'message')

),

consented_events as (

    {{ events_in_consent('attributed_events', 'person_ledger', 'analytics') }}

),

final as (

    select
        cast(event_source || ':' || event_key as {{ text_type() }}) as analytics_event_id,
        cast(person_key as {{ text_type() }}) as person_key,
        cast(event_source as {{ text_type() }}) as event_source,
        cast(event_key as {{ text_type() }}) as event_key,
        cast(event_type as {{ text_type() }}) as event_type,
        cast(event_at as timestamp) as event_at,
        cast(channel as {{ text_type() }}) as channel,
        cast(campaign_id as {{ text_type() }}) as campaign_id,
        cast(order_amount as decimal(12, 2)) as order_amount,
        cast(order_currency as {{ text_type() }}) as order_currency,
        cast(data_category as {{ text_type() }}) as data_category,
        cast(age_band as {{ text_type() }}) as age_band,
        cast(region as {{ text_type() }}) as region,
        cast({{ as_of() }} as timestamp) as as_of
    from consented_events

)

select * from final
