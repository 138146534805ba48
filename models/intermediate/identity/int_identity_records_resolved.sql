{#-
    The person behind each current record of the sources that hold records (not
    events): CRM customer records, orders, consent events and subject requests.
    An order belongs to the person of its customer, else of its checkout e-mail,
    else of its phone. person_key is null when every identifier of the record was
    refused (an anonymous guest order with a junk e-mail, say). Event streams
    (web events, messages) resolve where they are used, through
    int_identity_person_identifiers: copying them here would double the biggest
    tables on every build.

    One import CTE per lookup, each read once: DuckDB materialises a CTE that is
    read more than once (all its rows, before any join), and with one CTE for all
    six lookups this statement held 1.2 GB of it and 3.1 GB of hash tables at 1M
    customers, and ran out of memory beside another heavy node (decision 104).
    A customer, e-mail or phone key is looked up among the identifiers of its own
    type only: a pseudonym is the HMAC of `id_type:value`, so a key of one type
    never equals another type's, and the result is the same.
-#}
with crm_customer_ids as (

    select
        id_key,
        person_key
    from {{ ref('int_identity_person_identifiers') }}
    where id_type = 'customer_id'

),

order_customer_ids as (

    select
        id_key,
        person_key
    from {{ ref('int_identity_person_identifiers') }}
    where id_type = 'customer_id'

),

order_emails as (

    select
        id_key,
        person_key
    from {{ ref('int_identity_person_identifiers') }}
    where id_type = 'email'

),

order_phones as (

    select
        id_key,
        person_key
    from {{ ref('int_identity_person_identifiers') }}
    where id_type = 'phone'

),

consent_subjects as (

    select * from {{ ref('int_identity_person_identifiers') }}

),

request_subjects as (

    select * from {{ ref('int_identity_person_identifiers') }}

),

crm_customers as (

    select * from {{ ref('stg_crm__customers') }}

),

orders as (

    select * from {{ ref('stg_shop__orders') }}

),

consent_events as (

    select * from {{ ref('stg_privacy__consent_events') }}

),

subject_requests as (

    select * from {{ ref('stg_privacy__subject_requests') }}

),

crm_records as (

    select
        'stg_crm__customers' as source_model,
        crm_customers.customer_key as record_key,
        by_customer.person_key,
        case when by_customer.person_key is not null then 'customer_id' end as resolved_by
    from crm_customers
    left join crm_customer_ids as by_customer
        on crm_customers.customer_key = by_customer.id_key

),

order_records as (

    select
        'stg_shop__orders' as source_model,
        orders.order_key as record_key,
        coalesce(by_customer.person_key, by_email.person_key, by_phone.person_key) as person_key,
        case
            when by_customer.person_key is not null then 'customer_id'
            when by_email.person_key is not null then 'email'
            when by_phone.person_key is not null then 'phone'
        end as resolved_by
    from orders
    left join order_customer_ids as by_customer
        on orders.customer_key = by_customer.id_key
    left join order_emails as by_email
        on orders.email_key = by_email.id_key
    left join order_phones as by_phone
        on orders.phone_key = by_phone.id_key

),

consent_records as (

    select
        'stg_privacy__consent_events' as source_model,
        consent_events.consent_event_key as record_key,
        by_subject.person_key,
        case when by_subject.person_key is not null then consent_events.subject_id_type end as resolved_by
    from consent_events
    left join consent_subjects as by_subject
        on consent_events.subject_key = by_subject.id_key

),

request_records as (

    select
        'stg_privacy__subject_requests' as source_model,
        subject_requests.request_key as record_key,
        by_subject.person_key,
        case when by_subject.person_key is not null then subject_requests.subject_id_type end as resolved_by
    from subject_requests
    left join request_subjects as by_subject
        on subject_requests.subject_key = by_subject.id_key

),

final as (

    select * from crm_records
    union all
    select * from order_records
    union all
    select * from consent_records
    union all
    select * from request_records

)

select * from final
