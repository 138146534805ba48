{{ config(tags=['privacy']) }}
{#-
    The catalogue is complete: every messaging channel a purpose lists
    (purposes.message_channels) is a row of the seed channels, so its
    opt-outs are honoured and its audience has a contact type. A misspelt
    channel would otherwise stop nothing and reach no one, silently.
-#}
with purposes as (

    select * from {{ ref('purposes') }}

),

channels as (

    select * from {{ ref('channels') }}

),

listed_channels as (

    select
        purposes.purpose_code,
        trim(listed.channel) as channel
    from purposes
    {{ cross_join_split('purposes.message_channels', ';', 'listed', 'channel') }}
    where trim(listed.channel) <> ''

),

final as (

    select
        listed_channels.purpose_code,
        listed_channels.channel,
        'channel is not in the seed channels' as problem
    from listed_channels
    left join channels
        on listed_channels.channel = channels.channel
    where channels.channel is null

)

select * from final
