{#- One row per resolved person: its anchor and how many identifiers of each type it holds. -#}
with person_identifiers as (

    select * from {{ ref('int_identity_person_identifiers') }}

),

final as (

    select
        person_key,
        min(anchor_type) as anchor_type,
        min(anchor_key) as anchor_key,
        min(first_seen_at) as first_seen_at,
        count(*) as n_identifiers,
        count(case when id_type = 'customer_id' then 1 end) as n_customer_ids,
        count(case when id_type = 'email' then 1 end) as n_emails,
        count(case when id_type = 'phone' then 1 end) as n_phones,
        count(case when id_type = 'loyalty_card' then 1 end) as n_loyalty_cards,
        count(case when id_type = 'anonymous_id' then 1 end) as n_anonymous_ids,
        count(case when id_type = 'push_token' then 1 end) as n_push_tokens
    from person_identifiers
    group by person_key

)

select * from final
