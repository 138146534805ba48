{#-
    Who may be in the customer profile as of `as_of`: persons whose
    personalisation consent is in force and not stopped by an objection,
    restriction or erasure (int_consent__person_purposes), and who were active
    within the inactivity limit of the customer record. One row per person.
-#}
with person_purposes as (

    select * from {{ ref('int_consent__person_purposes') }}

),

person_activity as (

    select * from {{ ref('int_consent__person_activity') }}

),

final as (

    select
        person_purposes.person_key,
        person_purposes.consent_valid_from,
        person_purposes.consent_channel,
        person_purposes.policy_version,
        person_purposes.evidence_ref,
        person_activity.first_seen_at,
        person_activity.last_activity_at,
        {{ as_of() }} as as_of
    from person_purposes
    inner join person_activity
        on person_purposes.person_key = person_activity.person_key
    where
        person_purposes.purpose_code = 'personalisation'
        and person_purposes.is_permitted
        and person_activity.is_active

)

select * from final
