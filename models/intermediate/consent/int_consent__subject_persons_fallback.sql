{{ config(materialized='ephemeral', tags=['privacy_stage']) }}

{#-
    In-flight only (ephemeral): the identity map of the consent ledger when
    identity resolution is not used (var consent_identity_map = 'fallback';
    see int_consent__subject_persons). A person is a CRM customer, and an
    identifier belongs to the customers it is recorded with (CRM record, order
    contact, site login, message recipient). An identifier
    recorded with no customer is a person of its own; an identifier only a
    subject request names is no person at all (decision 51). An identifier recorded
    with several customers (a shared mailbox, a family phone, a shared device)
    is ambiguous: it links to every candidate, and is_unambiguous = false tells
    the ledger to take only opt-outs through it (withdrawals, objections,
    unsubscribes), never grants or activity.
-#}
with customers as {{ inline_cte() }} (

    select * from {{ ref('stg_crm__customers') }}

),

orders as {{ inline_cte() }} (

    select * from {{ ref('stg_shop__orders') }}

),

message_events as {{ inline_cte() }} (

    select * from {{ ref('stg_messaging__message_events') }}

),

web_events as {{ inline_cte() }} (

    select * from {{ ref('stg_web__events') }}

),

consent_events as (

    select * from {{ ref('stg_privacy__consent_events') }}

),

customer_links as (

    select
        'customer_id' as subject_id_type,
        customer_key as subject_key,
        customer_key,
        'crm_customer' as link_rule,
        1 as link_priority
    from customers
    union all
    select
        'email' as subject_id_type,
        email_key as subject_key,
        customer_key,
        'crm_email' as link_rule,
        1 as link_priority
    from customers
    where email_key is not null
    union all
    select
        'phone' as subject_id_type,
        phone_key as subject_key,
        customer_key,
        'crm_phone' as link_rule,
        1 as link_priority
    from customers
    where phone_key is not null
    union all
    select
        'loyalty_card' as subject_id_type,
        loyalty_card_key as subject_key,
        customer_key,
        'crm_loyalty_card' as link_rule,
        1 as link_priority
    from customers
    where loyalty_card_key is not null
    union all
    select
        'customer_id' as subject_id_type,
        customer_key as subject_key,
        customer_key,
        'order_customer' as link_rule,
        2 as link_priority
    from orders
    where customer_key is not null
    union all
    select
        'email' as subject_id_type,
        email_key as subject_key,
        customer_key,
        'order_contact' as link_rule,
        2 as link_priority
    from orders
    where customer_key is not null and email_key is not null
    union all
    select
        'phone' as subject_id_type,
        phone_key as subject_key,
        customer_key,
        'order_contact' as link_rule,
        2 as link_priority
    from orders
    where customer_key is not null and phone_key is not null
    union all
    select
        'customer_id' as subject_id_type,
        customer_key as subject_key,
        customer_key,
        'web_customer' as link_rule,
        2 as link_priority
    from web_events
    where customer_key is not null
    union all
    select
        'anonymous_id' as subject_id_type,
        anonymous_key as subject_key,
        customer_key,
        'web_login' as link_rule,
        2 as link_priority
    from web_events
    where customer_key is not null and anonymous_key is not null
    union all
    select
        'customer_id' as subject_id_type,
        customer_key as subject_key,
        customer_key,
        'message_customer' as link_rule,
        3 as link_priority
    from message_events
    where customer_key is not null
    union all
    select
        recipient_type as subject_id_type,
        recipient_key as subject_key,
        customer_key,
        'message_recipient' as link_rule,
        3 as link_priority
    from message_events
    where customer_key is not null and recipient_key is not null

),

linked as (

    select
        subject_key,
        customer_key,
        min(subject_id_type) as subject_id_type,
        {{ value_at_min('link_rule', ['link_priority']) }} as link_rule,
        min(link_priority) as link_priority
    from customer_links
    group by subject_key, customer_key

),

all_identifiers as (

    select
        subject_id_type,
        subject_key
    from consent_events
    union
    select
        'email' as subject_id_type,
        email_key as subject_key
    from orders
    where email_key is not null
    union
    select
        'phone' as subject_id_type,
        phone_key as subject_key
    from orders
    where phone_key is not null
    union
    select
        recipient_type as subject_id_type,
        recipient_key as subject_key
    from message_events
    where recipient_key is not null
    union
    select
        'anonymous_id' as subject_id_type,
        anonymous_key as subject_key
    from web_events
    where anonymous_key is not null

),

unlinked as (

    select
        all_identifiers.subject_key,
        min(all_identifiers.subject_id_type) as subject_id_type
    from all_identifiers
    left join linked
        on all_identifiers.subject_key = linked.subject_key
    where linked.subject_key is null
    group by all_identifiers.subject_key

),

final as (

    select
        linked.subject_id_type,
        linked.subject_key,
        {{ pseudonymise("'customer_key'", 'linked.customer_key', domain='person') }} as person_key,
        linked.link_rule,
        linked.link_priority,
        count(*) over (partition by linked.subject_key) as candidate_person_count,
        count(*) over (partition by linked.subject_key) = 1 as is_unambiguous
    from linked
    union all
    select
        unlinked.subject_id_type,
        unlinked.subject_key,
        {{ pseudonymise("'subject_key'", 'unlinked.subject_key', domain='person') }} as person_key,
        'own_identifier' as link_rule,
        4 as link_priority,
        1 as candidate_person_count,
        true as is_unambiguous
    from unlinked

)

select * from final
