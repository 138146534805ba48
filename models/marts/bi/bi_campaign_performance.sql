{{ config(materialized='table', schema='bi') }}

{#-
    Campaign performance for BI: per messaging channel and ISO week, the people
    reached and the messages sent, delivered, opened and clicked, with open and
    click rates. Message events of people with analytics consent at the event
    time (int_bi__analytics_events). A week with fewer than k recipients is
    suppressed; no totals are published, so no cell can be derived from them.
-#}
with analytics_events as (

    select * from {{ ref('int_bi__analytics_events') }}

),

person_weeks as (

    select
        channel,
        {{ week_of('event_at') }} as campaign_week,
        person_key,
        {{ dp_clamp("count(*) filter (where event_type = 'sent')", var('dp_max_messages_per_cell', 20)) }} as messages_sent,
        {{ dp_clamp("count(*) filter (where event_type = 'delivered')", var('dp_max_messages_per_cell', 20)) }}
            as messages_delivered,
        {{ dp_clamp("count(*) filter (where event_type = 'opened')", var('dp_max_messages_per_cell', 20)) }}
            as messages_opened,
        {{ dp_clamp("count(*) filter (where event_type = 'clicked')", var('dp_max_messages_per_cell', 20)) }}
            as messages_clicked
    from analytics_events
    where event_source = 'message'
    group by all

),

cells as (

    select
        channel,
        campaign_week,
        count(*) as recipient_count,
        sum(messages_sent) as messages_sent,
        sum(messages_delivered) as messages_delivered,
        sum(messages_opened) as messages_opened,
        sum(messages_clicked) as messages_clicked
    from person_weeks
    group by all

),

{{ k_anonymise('cells', ['channel'], 'campaign_week', 'recipient_count',
    ['messages_sent', 'messages_delivered', 'messages_opened', 'messages_clicked'], secondary=false,
    sensitivity={'recipient_count': 1, 'messages_sent': var('dp_max_messages_per_cell', 20),
                 'messages_delivered': var('dp_max_messages_per_cell', 20),
                 'messages_opened': var('dp_max_messages_per_cell', 20),
                 'messages_clicked': var('dp_max_messages_per_cell', 20)}) }},

final as (

    select
        cast(channel as varchar) as channel,
        cast(campaign_week as date) as campaign_week,
        cast(recipient_count as bigint) as recipient_count,
        cast(round(messages_sent) as bigint) as messages_sent,
        cast(round(messages_delivered) as bigint) as messages_delivered,
        cast(round(messages_opened) as bigint) as messages_opened,
        cast(round(messages_clicked) as bigint) as messages_clicked,
        cast(round(messages_opened / nullif(messages_delivered, 0), 4) as double) as open_rate,
        cast(round(messages_clicked / nullif(messages_delivered, 0), 4) as double) as click_rate,
        cast(is_suppressed as boolean) as is_suppressed,
        cast({{ as_of() }} as timestamp) as as_of
    from cells__published

)

select * from final
