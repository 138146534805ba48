{{ enforced_contract() }}

{#-
    Campaign performance for BI: per messaging channel and ISO week, the people
    reached, the distinct recipients delivered, opened and clicked, the
    messages sent, delivered, opened and clicked, and the open and click rates.
    Rates are on distinct recipients: a recipient counts once as delivered
    (any delivered, opened or clicked event: an open proves the delivery),
    once as opened (opened or clicked) and once as clicked, so clicked <=
    opened <= delivered <= reached, kept after the perturbation, and every
    rate is in [0, 1] by construction. Message events of people with
    analytics consent at the event time (int_bi__analytics_events). A week
    with fewer than k recipients is suppressed; no totals are published.
-#}
{{- reject_removed_disclosure_vars() -}}
with analytics_events as (

    select * from {{ ref('int_bi__analytics_events') }}

),

person_weeks as (

    select
        channel,
        {{ week_of('event_at') }} as campaign_week,
        person_key,
        bool_or(event_type in ('delivered', 'opened', 'clicked')) as is_delivered,
        bool_or(event_type in ('opened', 'clicked')) as is_opened,
        bool_or(event_type = 'clicked') as is_clicked,
        {{ count_where("event_type = 'sent'") }} as messages_sent,
        {{ count_where("event_type = 'delivered'") }} as messages_delivered,
        {{ count_where("event_type = 'opened'") }} as messages_opened,
        {{ count_where("event_type = 'clicked'") }} as messages_clicked
    from analytics_events
    where event_source = 'message'
    group by all

),

cells as (

    select
        channel,
        campaign_week,
        count(*) as recipient_count,
        {{ cell_key('person_key', 0) }} as recipient_count__key,
        {{ count_where('is_delivered') }} as delivered_recipients,
        {{ cell_key('person_key', 0, 'is_delivered') }} as delivered_recipients__key,
        {{ count_where('is_opened') }} as opened_recipients,
        {{ cell_key('person_key', 0, 'is_opened') }} as opened_recipients__key,
        {{ count_where('is_clicked') }} as clicked_recipients,
        {{ cell_key('person_key', 0, 'is_clicked') }} as clicked_recipients__key,
        sum(messages_sent) as messages_sent,
        {{ cell_key('person_key', 1) }} as messages_sent__key,
        sum(messages_delivered) as messages_delivered,
        {{ cell_key('person_key', 2) }} as messages_delivered__key,
        sum(messages_opened) as messages_opened,
        {{ cell_key('person_key', 3) }} as messages_opened__key,
        sum(messages_clicked) as messages_clicked,
        {{ cell_key('person_key', 4) }} as messages_clicked__key
    from person_weeks
    group by all

),

{{ k_anonymise('cells', ['channel'], 'campaign_week', 'recipient_count',
    ['messages_sent', 'messages_delivered', 'messages_opened', 'messages_clicked'], secondary=false,
    subcounts=['delivered_recipients', 'opened_recipients', 'clicked_recipients']) }},

ordered as (

    -- The perturbation draws each count on its own; the subset order is restored on the published values.
    select
        *,
        -- least() skips nulls: a suppressed row (null recipient_count) stays null
        case when not is_suppressed then least(delivered_recipients, recipient_count) end as delivered_published,
        case
            when not is_suppressed then least(opened_recipients, delivered_recipients, recipient_count)
        end as opened_published,
        case
            when not is_suppressed
                then least(clicked_recipients, opened_recipients, delivered_recipients, recipient_count)
        end as clicked_published
    from cells__published

),

final as (

    select
        cast(channel as {{ text_type() }}) as channel,
        cast(campaign_week as date) as campaign_week,
        cast(recipient_count as bigint) as recipient_count,
        cast(delivered_published as bigint) as delivered_recipients,
        cast(opened_published as bigint) as opened_recipients,
        cast(clicked_published as bigint) as clicked_recipients,
        cast(round(messages_sent) as bigint) as messages_sent,
        cast(round(messages_delivered) as bigint) as messages_delivered,
        cast(round(messages_opened) as bigint) as messages_opened,
        cast(round(messages_clicked) as bigint) as messages_clicked,
        cast({{ round_places('opened_published / nullif(delivered_published, 0)', 4) }} as double) as open_rate,
        cast({{ round_places('clicked_published / nullif(delivered_published, 0)', 4) }} as double) as click_rate,
        cast(is_suppressed as boolean) as is_suppressed,
        cast({{ as_of() }} as timestamp) as as_of
    from ordered

)

select * from final
