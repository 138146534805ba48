{#-
    The identifier an audience sends to, per person and messaging channel:
    email -> an email pseudonym, sms -> a phone pseudonym, push -> a push-token
    pseudonym. Only identifiers that belong to the person alone; the most
    authoritative link first (CRM record, then order contact, then messaging
    platform, then the identifier itself), ties to the smaller pseudonym.
-#}
with subject_persons as (

    select * from {{ ref('int_consent__subject_persons') }}

),

channels as (

    select
        subject_id_type,
        case subject_id_type
            when 'email' then 'email'
            when 'phone' then 'sms'
            when 'push_token' then 'push'
        end as channel
    from (select distinct subject_id_type from subject_persons) as id_types

),

ranked as (

    select
        subject_persons.person_key,
        channels.channel,
        subject_persons.subject_id_type as contact_id_type,
        subject_persons.subject_key as contact_key,
        subject_persons.link_rule,
        row_number() over (
            partition by subject_persons.person_key, channels.channel
            order by subject_persons.link_priority, subject_persons.subject_key
        ) as contact_rank
    from subject_persons
    inner join channels
        on subject_persons.subject_id_type = channels.subject_id_type
    where subject_persons.is_unambiguous and channels.channel is not null

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
