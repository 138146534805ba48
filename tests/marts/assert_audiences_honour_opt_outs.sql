{{ config(tags=['privacy']) }}
{#-
    Requirement 5, checked from staging rather than through the ledger: nobody
    is in a channel's audience who unsubscribed or complained on that channel
    (or objected to its purpose) after the consent the audience row relies on
    was given, through any identifier of theirs, by as_of.
-#}
with email_audience as (

    select * from {{ ref('rpt_email_audience') }}

),

sms_audience as (

    select * from {{ ref('rpt_sms_audience') }}

),

push_audience as (

    select * from {{ ref('rpt_push_audience') }}

),

message_events as (

    select * from {{ ref('stg_messaging__message_events') }}

),

subject_requests as (

    select * from {{ ref('stg_privacy__subject_requests') }}

),

subject_persons as (

    select * from {{ ref('int_consent__subject_persons') }}

),

marketing_purposes as (

    select unnest(['email_marketing', 'sms_marketing', 'push_marketing']) as purpose_code

),

audiences as (

    select
        'email_marketing' as purpose_code,
        person_key,
        consent_valid_from
    from email_audience
    union all
    select
        'sms_marketing' as purpose_code,
        person_key,
        consent_valid_from
    from sms_audience
    union all
    select
        'push_marketing' as purpose_code,
        person_key,
        consent_valid_from
    from push_audience

),

opt_outs as (

    select
        case message_events.channel
            when 'email' then 'email_marketing'
            when 'push' then 'push_marketing'
            else 'sms_marketing'
        end as purpose_code,
        identifiers.subject_key,
        message_events.event_at as opted_out_at,
        message_events.event_type as opt_out
    from message_events
    cross join unnest([message_events.customer_key, message_events.recipient_key]) as identifiers (subject_key)
    where
        message_events.event_type in ('unsubscribed', 'complained')
        and message_events.event_at <= {{ as_of() }}
    union all
    select
        coalesce(subject_requests.objection_purpose_code, marketing.purpose_code) as purpose_code,
        subject_requests.subject_key,
        subject_requests.received_at as opted_out_at,
        'objection' as opt_out
    from subject_requests
    cross join marketing_purposes as marketing
    where
        subject_requests.request_type = 'objection'
        and subject_requests.received_at <= {{ as_of() }}
        and (subject_requests.objection_purpose_code is null or subject_requests.objection_purpose_code = marketing.purpose_code)

),

final as (

    select
        audiences.purpose_code,
        audiences.person_key,
        audiences.consent_valid_from,
        opt_outs.opt_out,
        opt_outs.opted_out_at
    from audiences
    inner join subject_persons
        on audiences.person_key = subject_persons.person_key
    inner join opt_outs
        on
            subject_persons.subject_key = opt_outs.subject_key
            and audiences.purpose_code = opt_outs.purpose_code
    where opt_outs.opted_out_at >= audiences.consent_valid_from

)

select * from final
