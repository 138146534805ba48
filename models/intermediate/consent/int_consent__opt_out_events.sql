{{ config(materialized='ephemeral') }}

{#-
    Opt-outs that are not in the consent log, as withdrawals of the purposes
    they stop, per identifier (docs/decisions.md, "Opt-outs are withdrawals"):
      unsubscribe  an `unsubscribed` message event: every purpose whose
                   message_channels include the message's channel
      complaint    a `complained` (spam report) message event, likewise
      objection    an objection request: its purpose, or every consent or
                   legitimate-interest purpose when it names none we know
    A message event is a withdrawal by both identifiers it carries (customer
    and recipient). Requests count from receipt, verified or not: stopping is
    the safe side. The ledger treats these rows like withdrawals from the
    consent log, so a fresh, evidenced grant after an opt-out opens a new
    interval, and the opt-out is kept as proof as long as consent records are.
-#}
with subject_requests as (

    select * from {{ ref('stg_privacy__subject_requests') }}

),

message_events as (

    select * from {{ ref('stg_messaging__message_events') }}

),

purposes as {{ inline_cte() }} (

    select * from {{ ref('purposes') }}

),

objections as (

    select
        subject_requests.request_key,
        subject_requests.subject_id_type,
        subject_requests.subject_key,
        subject_requests.received_at,
        subject_requests._loaded_at,
        subject_requests._batch_id,
        objected_purposes.purpose_code as objection_purpose_code
    from subject_requests
    left join purposes as objected_purposes
        on subject_requests.objection_purpose_code = objected_purposes.purpose_code
    -- an objection naming nobody usable (no subject_key) withdraws nobody's consent (decision 51)
    where subject_requests.request_type = 'objection' and subject_requests.subject_key is not null

),

objection_events as (

    select
        objections.subject_id_type,
        objections.subject_key,
        purposes.purpose_code,
        objections.received_at as captured_at,
        objections._loaded_at,
        objections._batch_id,
        'objection' as event_origin,
        'privacy_desk' as channel,
        'objection:' || objections.request_key || ':' || purposes.purpose_code as consent_event_id,
        'privacy.subject_requests:' || objections.request_key as evidence_ref
    from objections
    inner join purposes
        on (
            objections.objection_purpose_code = purposes.purpose_code
            or (
                objections.objection_purpose_code is null
                and purposes.legal_basis in ('consent', 'legitimate_interest')
            )
        )

),

message_opt_outs as (

    select
        message_events.message_event_key,
        message_events.customer_key,
        message_events.recipient_type,
        message_events.recipient_key,
        message_events.channel,
        message_events.event_at,
        message_events._loaded_at,
        message_events._batch_id,
        purposes.purpose_code,
        case message_events.event_type
            when 'unsubscribed' then 'unsubscribe'
            else 'complaint'
        end as event_origin
    from message_events
    inner join purposes
        on {{ delimited_list_contains('purposes.message_channels', ';', 'message_events.channel') }}
    where message_events.event_type in ('unsubscribed', 'complained')

),

message_events_by_subject as (

    select
        customer_key as subject_key,
        purpose_code,
        event_origin,
        channel,
        event_at as captured_at,
        _loaded_at,
        _batch_id,
        'customer_id' as subject_id_type,
        event_origin || ':' || message_event_key || ':customer:' || purpose_code as consent_event_id,
        'messaging.message_events:' || message_event_key as evidence_ref
    from message_opt_outs
    where customer_key is not null
    union all
    select
        recipient_key as subject_key,
        purpose_code,
        event_origin,
        channel,
        event_at as captured_at,
        _loaded_at,
        _batch_id,
        recipient_type as subject_id_type,
        event_origin || ':' || message_event_key || ':recipient:' || purpose_code as consent_event_id,
        'messaging.message_events:' || message_event_key as evidence_ref
    from message_opt_outs
    where recipient_key is not null

),

final as (

    select
        consent_event_id,
        subject_id_type,
        subject_key,
        purpose_code,
        'withdraw' as action,  -- noqa: RF04
        event_origin,
        channel,
        cast(null as {{ text_type() }}) as policy_version,
        evidence_ref,
        captured_at,
        _loaded_at,
        _batch_id
    from objection_events
    union all
    select
        consent_event_id,
        subject_id_type,
        subject_key,
        purpose_code,
        'withdraw' as action,  -- noqa: RF04
        event_origin,
        channel,
        cast(null as {{ text_type() }}) as policy_version,
        evidence_ref,
        captured_at,
        _loaded_at,
        _batch_id
    from message_events_by_subject

)

select * from final
