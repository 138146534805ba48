{#-
    May this person's data be processed for this purpose, as of `as_of`? One
    row per person and consent-based purpose with any consent history.
    Permitted = an interval of the person ledger is in force (no withdrawal,
    unsubscribe, complaint or objection since the last grant) and the person
    has not asked for restriction or erasure. Profile and audiences select
    from here; the consent_presence test checks them against it.
-#}
with person_ledger as {{ inline_cte() }} (

    select * from {{ ref('int_consent__person_ledger') }}

),

person_restrictions as (

    select * from {{ ref('int_consent__person_restrictions') }}

),

purposes as (

    select * from {{ ref('purposes') }}

),

consent_purposes as (

    select purpose_code from purposes
    where is_consent_required

),

person_purpose_pairs as (

    select distinct
        person_key,
        purpose_code
    from person_ledger

),

current_consent as (

    select * from person_ledger
    where is_valid_as_of

),

last_withdrawal as (

    select
        person_key,
        purpose_code,
        max(valid_to) as last_withdrawn_at,
        {{ value_at_max('withdraw_origin', ['valid_to', 'withdraw_origin']) }} as last_withdrawal_origin
    from person_ledger
    where valid_to is not null
    group by person_key, purpose_code

),

restrictions as (

    select
        person_key,
        min(restricted_since) as restricted_since,
        {{ value_at_min('request_type', ['restricted_since']) }} as restriction_type
    from person_restrictions
    group by person_key

),

final as (

    select
        person_purpose_pairs.person_key,
        person_purpose_pairs.purpose_code,
        current_consent.person_key is not null as is_consented,
        current_consent.valid_from as consent_valid_from,
        current_consent.grant_channel as consent_channel,
        current_consent.policy_version,
        current_consent.evidence_ref,
        last_withdrawal.last_withdrawn_at,
        last_withdrawal.last_withdrawal_origin,
        restrictions.person_key is not null as is_restricted,
        restrictions.restriction_type,
        restrictions.restricted_since,
        current_consent.person_key is not null and restrictions.person_key is null as is_permitted,
        {{ as_of() }} as as_of
    from person_purpose_pairs
    inner join consent_purposes
        on person_purpose_pairs.purpose_code = consent_purposes.purpose_code
    left join current_consent
        on
            person_purpose_pairs.person_key = current_consent.person_key
            and person_purpose_pairs.purpose_code = current_consent.purpose_code
    left join last_withdrawal
        on
            person_purpose_pairs.person_key = last_withdrawal.person_key
            and person_purpose_pairs.purpose_code = last_withdrawal.purpose_code
    left join restrictions
        on person_purpose_pairs.person_key = restrictions.person_key

)

select * from final
