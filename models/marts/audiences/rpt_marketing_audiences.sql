{{ enforced_contract() }}

{#-
    Who may be sent messages for which marketing purpose as of `as_of`, one
    row per purpose, person and contact identifier type. A purpose has an
    audience when the purposes catalogue lists channels for it
    (purposes.message_channels); it is sent to the person's own identifier of
    the types those channels deliver to (seed channels, via
    int_consent__person_contacts). A person is in it whose consent for the
    purpose is permitted (int_consent__person_purposes: in force, not stopped
    by an objection, unsubscribe, complaint, restriction or erasure since it
    was given) and who was active within the inactivity limit. A new purpose
    or channel is a seed row, not a model (docs/decisions.md, 54); the
    published per-purpose audiences (rpt_email_audience, ...) are slices of this.
-#}
with person_purposes as (

    select * from {{ ref('int_consent__person_purposes') }}

),

person_activity as (

    select * from {{ ref('int_consent__person_activity') }}

),

person_contacts as (

    select * from {{ ref('int_consent__person_contacts') }}

),

purposes as (

    select * from {{ ref('purposes') }}

),

channels as (

    select * from {{ ref('channels') }}

),

purpose_channels as (

    select
        purposes.purpose_code,
        trim(listed.channel) as channel
    from purposes
    {{ cross_join_split('purposes.message_channels', ';', 'listed', 'channel') }}

),

purpose_contact_types as (

    select distinct
        purpose_channels.purpose_code,
        channels.recipient_type as contact_id_type
    from purpose_channels
    inner join channels
        on purpose_channels.channel = channels.channel

),

permitted as (

    select * from person_purposes
    where is_permitted

),

final as (

    select
        cast(permitted.purpose_code as {{ text_type() }}) as purpose_code,
        cast(permitted.person_key as {{ text_type() }}) as person_key,
        cast(person_contacts.contact_id_type as {{ text_type() }}) as contact_id_type,
        cast(person_contacts.contact_key as {{ text_type() }}) as contact_key,
        cast(permitted.consent_valid_from as timestamp) as consent_valid_from,
        cast(permitted.consent_channel as {{ text_type() }}) as consent_channel,
        cast(permitted.policy_version as {{ text_type() }}) as policy_version,
        cast(permitted.evidence_ref as {{ text_type() }}) as evidence_ref,
        cast(person_activity.last_activity_at as timestamp) as last_activity_at,
        cast({{ as_of() }} as timestamp) as as_of
    from permitted
    inner join purpose_contact_types
        on permitted.purpose_code = purpose_contact_types.purpose_code
    inner join person_contacts
        on
            permitted.person_key = person_contacts.person_key
            and purpose_contact_types.contact_id_type = person_contacts.contact_id_type
    inner join person_activity
        on permitted.person_key = person_activity.person_key
    where person_activity.is_active

)

select * from final
