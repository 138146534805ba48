{#-
    The body of a channel audience (rpt_<channel>_audience): one row per person
    whose `purpose_code` consent is permitted (int_consent__person_purposes),
    who is active within the inactivity limit, and who has a `channel` contact
    identifier of their own. The three audiences differ only in these two
    arguments, so they share this one query.
-#}
{% macro channel_audience(purpose_code, channel) -%}
    {{ return(adapter.dispatch('channel_audience', 'cdp')(purpose_code, channel)) }}
{%- endmacro %}

{% macro default__channel_audience(purpose_code, channel) -%}
with person_purposes as (

    select * from {{ ref('int_consent__person_purposes') }}

),

person_activity as (

    select * from {{ ref('int_consent__person_activity') }}

),

person_contacts as (

    select * from {{ ref('int_consent__person_contacts') }}

),

permitted as (

    select * from person_purposes
    where purpose_code = '{{ purpose_code }}' and is_permitted

),

contacts as (

    select * from person_contacts
    where channel = '{{ channel }}'

),

final as (

    select
        cast(permitted.person_key as varchar) as person_key,
        cast(contacts.contact_id_type as varchar) as contact_id_type,
        cast(contacts.contact_key as varchar) as contact_key,
        cast(permitted.consent_valid_from as timestamp) as consent_valid_from,
        cast(permitted.consent_channel as varchar) as consent_channel,
        cast(permitted.policy_version as varchar) as policy_version,
        cast(permitted.evidence_ref as varchar) as evidence_ref,
        cast(person_activity.last_activity_at as timestamp) as last_activity_at,
        cast({{ as_of() }} as timestamp) as as_of
    from permitted
    inner join contacts
        on permitted.person_key = contacts.person_key
    inner join person_activity
        on permitted.person_key = person_activity.person_key
    where person_activity.is_active

)

select * from final
{%- endmacro %}
