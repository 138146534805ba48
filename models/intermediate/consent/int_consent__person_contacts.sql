{#-
    The identifier an audience sends to, per person and recipient identifier
    type: every type a messaging channel sends to (seed channels: email ->
    email, sms and messenger -> phone, push -> push_token). Only identifiers
    that belong to the person alone; a contact the person corrected by a
    verified rectification request first (int_rights__rectifications), then
    the most authoritative link (CRM record, then order contact, then
    messaging platform, then the identifier itself), ties to the smaller
    pseudonym.
-#}
with subject_persons as (

    select * from {{ ref('int_consent__subject_persons') }}

),

rectifications as (

    select * from {{ ref('int_rights__rectifications') }}

),

channels as (

    select * from {{ ref('channels') }}

),

candidates as (

    select
        person_key,
        subject_id_type,
        subject_key,
        link_rule,
        link_priority,
        is_unambiguous
    from subject_persons
    union all
    select
        person_key,
        rectification_field as subject_id_type,
        rectified_value_key as subject_key,
        'rectification' as link_rule,
        0 as link_priority,
        true as is_unambiguous
    from rectifications

),

recipient_types as (

    select distinct recipient_type from channels

),

ranked as (

    select
        candidates.person_key,
        candidates.subject_id_type as contact_id_type,
        candidates.subject_key as contact_key,
        candidates.link_rule,
        row_number() over (
            partition by candidates.person_key, candidates.subject_id_type
            order by candidates.link_priority, candidates.subject_key, candidates.link_rule
        ) as contact_rank
    from candidates
    inner join recipient_types
        on candidates.subject_id_type = recipient_types.recipient_type
    where candidates.is_unambiguous

),

final as (

    select
        person_key,
        contact_id_type,
        contact_key,
        link_rule
    from ranked
    where contact_rank = 1

)

select * from final
