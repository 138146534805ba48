{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key=['source_model', 'id_key_a', 'id_key_b'],
    on_schema_change='fail',
) }}

{#-
    The identity graph's evidence: one row per pair of identifiers that one
    source model saw together (a self pair when a record names one identifier
    only), with the first record that showed it.

    Every version of a record is evidence (a customer's earlier phone is still
    theirs), so kept and superseded rows are read; duplicates and quarantined
    rows are not. Subject requests are no evidence: a request names a person
    the other sources know, it never makes one (decision 51). Incremental: each run reads the staging rows loaded after the
    last run's (per source model) and folds them into the existing pairs.
-#}
with crm_customers as (

    select * from {{ ref('stg_crm__customers_triaged') }}

),

web_events as (

    select * from {{ ref('stg_web__events_triaged') }}

),

orders as (

    select * from {{ ref('stg_shop__orders_triaged') }}

),

message_events as (

    select * from {{ ref('stg_messaging__message_events_triaged') }}

),

consent_events as (

    select * from {{ ref('stg_privacy__consent_events_triaged') }}

),

-- how far each source model was read by earlier runs
loaded_until as (

    {% if is_incremental() %}
        select
            source_model,
            max(last_loaded_at) as loaded_until
        from {{ this }}
        group by source_model
    {% else %}
        select
            cast(null as varchar) as source_model,
            cast(null as timestamp) as loaded_until
        where false
    {% endif %}

),

crm_versions as (

    select crm_customers.*
    from crm_customers
    left join loaded_until
        on loaded_until.source_model = 'stg_crm__customers_triaged'
    where
        crm_customers.row_status in ('kept', 'superseded')
        and crm_customers._loaded_at > coalesce(loaded_until.loaded_until, timestamp '1900-01-01')

),

crm_evidence as (

    -- the record itself, seen when it was created
    select
        'stg_crm__customers_triaged' as source_model,
        customer_key as record_key,
        'customer_id' as id_type_a,
        customer_key as id_key_a,
        'customer_id' as id_type_b,
        customer_key as id_key_b,
        coalesce(created_at, updated_at) as observed_at,
        _loaded_at
    from crm_versions
    union all
    select
        'stg_crm__customers_triaged' as source_model,
        customer_key as record_key,
        'customer_id' as id_type_a,
        customer_key as id_key_a,
        'email' as id_type_b,
        email_key as id_key_b,
        coalesce(updated_at, created_at) as observed_at,
        _loaded_at
    from crm_versions
    where email_key is not null
    union all
    select
        'stg_crm__customers_triaged' as source_model,
        customer_key as record_key,
        'customer_id' as id_type_a,
        customer_key as id_key_a,
        'phone' as id_type_b,
        phone_key as id_key_b,
        coalesce(updated_at, created_at) as observed_at,
        _loaded_at
    from crm_versions
    where phone_key is not null
    union all
    select
        'stg_crm__customers_triaged' as source_model,
        customer_key as record_key,
        'customer_id' as id_type_a,
        customer_key as id_key_a,
        'loyalty_card' as id_type_b,
        loyalty_card_key as id_key_b,
        coalesce(updated_at, created_at) as observed_at,
        _loaded_at
    from crm_versions
    where loyalty_card_key is not null

),

-- a logged-in event ties the cookie (or app install) to the customer
web_evidence as (

    select
        'stg_web__events_triaged' as source_model,
        web_events.event_key as record_key,
        'customer_id' as id_type_a,
        web_events.customer_key as id_key_a,
        'anonymous_id' as id_type_b,
        web_events.anonymous_key as id_key_b,
        web_events.event_at as observed_at,
        web_events._loaded_at
    from web_events
    left join loaded_until
        on loaded_until.source_model = 'stg_web__events_triaged'
    where
        web_events.row_status in ('kept', 'superseded')
        and web_events.customer_key is not null
        and web_events.anonymous_key is not null
        and web_events._loaded_at > coalesce(loaded_until.loaded_until, timestamp '1900-01-01')

),

-- an order ties its customer (or, for a guest, its e-mail) to the checkout contacts
order_hubs as (

    select
        orders.order_key,
        orders.email_key,
        orders.phone_key,
        orders.ordered_at,
        orders._loaded_at,
        case
            when orders.customer_key is not null then 'customer_id'
            when orders.email_key is not null then 'email'
            when orders.phone_key is not null then 'phone'
        end as hub_type,
        coalesce(orders.customer_key, orders.email_key, orders.phone_key) as hub_key
    from orders
    left join loaded_until
        on loaded_until.source_model = 'stg_shop__orders_triaged'
    where
        orders.row_status in ('kept', 'superseded')
        and orders._loaded_at > coalesce(loaded_until.loaded_until, timestamp '1900-01-01')

),

order_evidence as (

    select
        'stg_shop__orders_triaged' as source_model,
        order_key as record_key,
        hub_type as id_type_a,
        hub_key as id_key_a,
        hub_type as id_type_b,
        hub_key as id_key_b,
        ordered_at as observed_at,
        _loaded_at
    from order_hubs
    where hub_key is not null
    union all
    select
        'stg_shop__orders_triaged' as source_model,
        order_key as record_key,
        hub_type as id_type_a,
        hub_key as id_key_a,
        'email' as id_type_b,
        email_key as id_key_b,
        ordered_at as observed_at,
        _loaded_at
    from order_hubs
    where email_key is not null and hub_type <> 'email'
    union all
    select
        'stg_shop__orders_triaged' as source_model,
        order_key as record_key,
        hub_type as id_type_a,
        hub_key as id_key_a,
        'phone' as id_type_b,
        phone_key as id_key_b,
        ordered_at as observed_at,
        _loaded_at
    from order_hubs
    where phone_key is not null and hub_type <> 'phone'

),

-- a message ties the customer to the address it was sent to
message_evidence as (

    select
        'stg_messaging__message_events_triaged' as source_model,
        message_events.message_event_key as record_key,
        case
            when message_events.customer_key is not null then 'customer_id'
            else message_events.recipient_type
        end as id_type_a,
        coalesce(message_events.customer_key, message_events.recipient_key) as id_key_a,
        case
            when message_events.recipient_key is not null then message_events.recipient_type
            else 'customer_id'
        end as id_type_b,
        coalesce(message_events.recipient_key, message_events.customer_key) as id_key_b,
        message_events.event_at as observed_at,
        message_events._loaded_at
    from message_events
    left join loaded_until
        on loaded_until.source_model = 'stg_messaging__message_events_triaged'
    where
        message_events.row_status in ('kept', 'superseded')
        and coalesce(message_events.customer_key, message_events.recipient_key) is not null
        and message_events._loaded_at > coalesce(loaded_until.loaded_until, timestamp '1900-01-01')

),

-- consent and subject requests name one identifier: the node joins the graph
-- only through identifiers it shares with other records
consent_evidence as (

    select
        'stg_privacy__consent_events_triaged' as source_model,
        consent_events.consent_event_key as record_key,
        consent_events.subject_id_type as id_type_a,
        consent_events.subject_key as id_key_a,
        consent_events.subject_id_type as id_type_b,
        consent_events.subject_key as id_key_b,
        consent_events.captured_at as observed_at,
        consent_events._loaded_at
    from consent_events
    left join loaded_until
        on loaded_until.source_model = 'stg_privacy__consent_events_triaged'
    where
        consent_events.row_status in ('kept', 'superseded')
        and consent_events.subject_key is not null
        and consent_events._loaded_at > coalesce(loaded_until.loaded_until, timestamp '1900-01-01')

),

evidence as (

    select * from crm_evidence
    union all
    select * from web_evidence
    union all
    select * from order_evidence
    union all
    select * from message_evidence
    union all
    select * from consent_evidence

),

new_edges as (

    select
        source_model,
        id_type_a,
        id_key_a,
        id_type_b,
        id_key_b,
        arg_min(record_key, (coalesce(observed_at, timestamp 'infinity'), record_key)) as first_record_key,
        min(observed_at) as first_seen_at,
        max(observed_at) as last_seen_at,
        count(*) as n_records,
        max(_loaded_at) as last_loaded_at
    from evidence
    group by source_model, id_type_a, id_key_a, id_type_b, id_key_b

),

{% if is_incremental() %}

    -- pairs seen again: fold the earlier runs' counts and first record in
    touched_edges as (

        select previous.*
        from {{ this }} as previous
        inner join new_edges
            on
                previous.source_model = new_edges.source_model
                and previous.id_key_a = new_edges.id_key_a
                and previous.id_key_b = new_edges.id_key_b

    ),

    all_edges as (

        select
            source_model,
            id_type_a,
            id_key_a,
            id_type_b,
            id_key_b,
            first_record_key,
            first_seen_at,
            last_seen_at,
            n_records,
            last_loaded_at
        from new_edges
        union all
        select
            source_model,
            id_type_a,
            id_key_a,
            id_type_b,
            id_key_b,
            first_record_key,
            first_seen_at,
            last_seen_at,
            n_records,
            last_loaded_at
        from touched_edges

    ),

{% else %}

    all_edges as (

        select * from new_edges

    ),

{% endif %}

final as (

    select
        source_model,
        id_type_a,
        id_key_a,
        id_type_b,
        id_key_b,
        cast(sum(n_records) as bigint) as n_records,
        arg_min(
            first_record_key, (coalesce(first_seen_at, timestamp 'infinity'), first_record_key)
        ) as first_record_key,
        min(first_seen_at) as first_seen_at,
        max(last_seen_at) as last_seen_at,
        max(last_loaded_at) as last_loaded_at,
        id_key_a = id_key_b as is_self_pair
    from all_edges
    group by source_model, id_type_a, id_key_a, id_type_b, id_key_b

)

select * from final
