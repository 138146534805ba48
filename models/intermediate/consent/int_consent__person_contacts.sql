{#-
    The identifier an audience sends to, per person and messaging channel:
    email -> an email pseudonym, sms -> a phone pseudonym, push -> a push-token
    pseudonym. Only identifiers that belong to the person alone; a contact the
    person corrected by a verified rectification request first
    (int_rights__rectifications), then the most authoritative link (CRM
    record, then order contact, then messaging platform, then the identifier
    itself), ties to the smaller pseudonym.
-#}
with subject_persons as (

    select * from {{ ref('int_consent__subject_persons') }}

),

rectifications as (

    select * from {{ ref('int_rights__rectifications') }}

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

channels as (

    select
        subject_id_type,
        case subject_id_type
            when 'email' then 'email'
            when 'phone' then 'sms'
            when 'push_token' then 'push'
        end as channel
    from (select distinct subject_id_type from candidates) as id_types

),

ranked as (

    select
        candidates.person_key,
        channels.channel,
        candidates.subject_id_type as contact_id_type,
        candidates.subject_key as contact_key,
        candidates.link_rule,
        row_number() over (
            partition by candidates.person_key, channels.channel
            order by candidates.link_priority, candidates.subject_key
        ) as contact_rank
    from candidates
    inner join channels
        on candidates.subject_id_type = channels.subject_id_type
    where candidates.is_unambiguous and channels.channel is not null

),

final as (

    select
        person_key,
        channel,
        contact_id_type,
        contact_key,
        link_rule
    from ranked
    where contact_rank = 1

)

select * from final
