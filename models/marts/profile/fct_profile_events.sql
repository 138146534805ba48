{{ enforced_contract() }}

{#-
    The activity the customer profile is built from, one row per event:
    orders, message events and site events of people who may be profiled.
    An event is here only if the person may be profiled as of `as_of`
    (int_consent__profiled_persons), the person's consent was also in
    force when the event happened (requirement 4), the event happened by
    as_of, and it is within its data category's retention window. An event is
    attributed through an identifier that belongs to one person only.
-#}
with retained_events as (

    select * from {{ ref('int_consent__retained_person_events') }}

),

person_ledger as (

    select * from {{ ref('int_consent__person_ledger') }}

),

profiled_persons as (

    select * from {{ ref('int_consent__profiled_persons') }}

),

attributed_events as (

    {#- A filter, not a join: nothing of the profiled person is carried, and a semi-join keeps
        the 4.4 M events of 100,000 customers out of a join's payload (decision 98). #}
    select retained_events.*
    from retained_events
    where retained_events.person_key in (select profiled_persons.person_key from profiled_persons)

),

consented_events as (

    {{ events_in_consent('attributed_events', 'person_ledger', 'personalisation') }}

),

final as (

    select
        cast(event_source || ':' || event_key as {{ text_type() }}) as profile_event_id,
        cast(person_key as {{ text_type() }}) as person_key,
        cast(event_source as {{ text_type() }}) as event_source,
        cast(event_key as {{ text_type() }}) as event_key,
        cast(event_type as {{ text_type() }}) as event_type,
        cast(event_at as timestamp) as event_at,
        cast(channel as {{ text_type() }}) as channel,
        cast(device_class as {{ text_type() }}) as device_class,
        cast(order_amount as decimal(12, 2)) as order_amount,
        cast(order_currency as {{ text_type() }}) as order_currency,
        cast(data_category as {{ text_type() }}) as data_category,
        cast({{ as_of() }} as timestamp) as as_of
    from consented_events

)

select * from final
