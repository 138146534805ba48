{{ config(tags=['privacy']) }}
{#-
    Requirement 5, checked from staging rather than through the ledger: nobody
    is in a purpose's audience who unsubscribed or complained on one of that
    purpose's channels (or objected to the purpose, or to all marketing) after
    the consent the audience row relies on was given, through any identifier
    of theirs, by as_of. Which channels stop which purpose is the catalogue's
    (purposes.message_channels): a new marketing purpose is checked with no
    edit here. Every published audience (rpt_<channel>_audience) is a slice of
    rpt_marketing_audiences.
-#}
with marketing_audiences as (

    select * from {{ ref('rpt_marketing_audiences') }}

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

purposes as (

    select * from {{ ref('purposes') }}

),

purpose_channels as (

    select
        purposes.purpose_code,
        trim(listed.channel) as channel
    from purposes
    {{ cross_join_split('purposes.message_channels', ';', 'listed', 'channel') }}

),

marketing_purposes as (

    select distinct purpose_code from purpose_channels

),

opt_outs as (

    select
        purpose_channels.purpose_code,
        identifiers.subject_key,
        message_events.event_at as opted_out_at,
        message_events.event_type as opt_out
    from message_events
    inner join purpose_channels
        on message_events.channel = purpose_channels.channel
    {{ cross_join_values(['message_events.customer_key', 'message_events.recipient_key'], 'identifiers', 'subject_key') }}
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
        marketing_audiences.purpose_code,
        marketing_audiences.person_key,
        marketing_audiences.consent_valid_from,
        opt_outs.opt_out,
        opt_outs.opted_out_at
    from marketing_audiences
    inner join subject_persons
        on marketing_audiences.person_key = subject_persons.person_key
    inner join opt_outs
        on
            subject_persons.subject_key = opt_outs.subject_key
            and marketing_audiences.purpose_code = opt_outs.purpose_code
    where opt_outs.opted_out_at >= marketing_audiences.consent_valid_from

)

select * from final
