{{ config(materialized='ephemeral', tags=['privacy_stage']) }}

{#-
    In-flight only (ephemeral): the identity map of the consent ledger from
    identity resolution (var consent_identity_map = 'identity', the default;
    see int_consent__subject_persons). An identifier belongs to its resolved
    person (int_identity_person_identifiers). An identifier the guards refused
    (junk, shared, over-linked) links, as ambiguous, to every person on the
    other end of a refused link (int_identity_person_edges): opt-outs through
    it count for all of them, grants for none. An identifier no person claims
    is a person of its own. Subject requests add no identifier: a request
    only ever names a person the data already holds (decision 51).
-#}
with person_identifiers as (

    select * from {{ ref('int_identity_person_identifiers') }}

),

person_edges as (

    select * from {{ ref('int_identity_person_edges') }}

),

refused_identifiers as (

    select * from {{ ref('int_identity_refused_identifiers') }}

),

consent_events as (

    select * from {{ ref('stg_privacy__consent_events') }}

),

message_events as {{ inline_cte() }} (

    select * from {{ ref('stg_messaging__message_events') }}

),

resolved as (

    select
        id_type as subject_id_type,
        id_key as subject_key,
        person_key,
        'identity_' || resolution as link_rule,
        case when resolution = 'component' then 1 else 2 end as link_priority
    from person_identifiers

),

refused_candidates as (

    select distinct
        refused_identifiers.id_type as subject_id_type,
        refused_identifiers.id_key as subject_key,
        person_edges.person_key
    from refused_identifiers
    inner join person_edges
        on refused_identifiers.id_key = person_edges.refused_id_key
    where person_edges.edge_role = 'refused' and person_edges.person_key is not null

),

claimed as (

    select
        subject_id_type,
        subject_key,
        person_key,
        link_rule,
        link_priority,
        1 as candidate_person_count,
        true as is_unambiguous
    from resolved
    union all
    select
        subject_id_type,
        subject_key,
        person_key,
        'identity_refused' as link_rule,
        3 as link_priority,
        count(*) over (partition by subject_key) as candidate_person_count,
        false as is_unambiguous
    from refused_candidates

),

seen_identifiers as (

    select
        subject_id_type,
        subject_key
    from consent_events
    union
    select
        recipient_type as subject_id_type,
        recipient_key as subject_key
    from message_events
    where recipient_key is not null
    union
    select
        'customer_id' as subject_id_type,
        customer_key as subject_key
    from message_events
    where customer_key is not null

),

unclaimed as (

    select
        seen_identifiers.subject_key,
        min(seen_identifiers.subject_id_type) as subject_id_type
    from seen_identifiers
    left join claimed
        on seen_identifiers.subject_key = claimed.subject_key
    where claimed.subject_key is null
    group by seen_identifiers.subject_key

),

final as (

    select
        subject_id_type,
        subject_key,
        person_key,
        link_rule,
        link_priority,
        candidate_person_count,
        is_unambiguous
    from claimed
    union all
    select
        subject_id_type,
        subject_key,
        {{ pseudonymise("'subject_key'", 'subject_key', domain='person') }} as person_key,
        'own_identifier' as link_rule,
        4 as link_priority,
        1 as candidate_person_count,
        true as is_unambiguous
    from unclaimed

)

select * from final
