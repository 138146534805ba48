{#-
    The identifier type of a messaging recipient, by channel: the channel's row
    of the seed channels (null for a channel the seed does not list, which
    staging quarantines as unknown_channel). A new channel is a seed row.
-#}
{% macro recipient_type(channel) -%}
    {{ return(adapter.dispatch('recipient_type', 'cdp')(channel)) }}
{%- endmacro %}

{% macro default__recipient_type(channel) -%}
    {#- The seed's columns are renamed so that `channel` (usually a bare column name) can only
        mean the caller's column, never the seed's. -#}
    (
        select channel_map.channel_recipient_type
        from (
            select
                seeded.channel as channel_code,
                seeded.recipient_type as channel_recipient_type
            from {{ ref('channels') }} as seeded
        ) as channel_map
        where channel_map.channel_code = lower(trim({{ channel }}))
    )
{%- endmacro %}
