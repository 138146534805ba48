{#- A refused identifier (junk, shared, conflicting, shared device) belongs to no person. -#}
with refused as (

    select * from {{ ref('int_identity_refused_identifiers') }}

),

person_identifiers as (

    select * from {{ ref('int_identity_person_identifiers') }}

),

final as (

    select
        refused.id_type,
        refused.id_key,
        refused.refusal_reason,
        person_identifiers.person_key
    from refused
    inner join person_identifiers
        on refused.id_key = person_identifiers.id_key

)

select * from final
