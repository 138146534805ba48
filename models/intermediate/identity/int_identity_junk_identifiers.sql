{#-
    Junk identifiers (seed identity_junk_identifiers) normalised and
    pseudonymised exactly as staging does it, so that the identity graph can
    recognise them among pseudonyms. The plaintext exists only inside this query.
-#}
with junk_values as (

    select * from {{ ref('identity_junk_identifiers') }}

),

assembled as (

    select
        id_type,
        note,
        case id_type
            when 'email' then local_part || '@' || domain
            when 'phone' then '+' || country_code || national_number
        end as junk_value
    from junk_values

),

pseudonymised as (

    select
        id_type,
        note,
        {{ pseudonymise('id_type', normalise_identifier('id_type', 'junk_value')) }} as id_key
    from assembled

),

final as (

    select
        id_type,
        id_key,
        min(note) as note
    from pseudonymised
    -- placeholders that the normalisers already reject never reach staging
    where id_key is not null
    group by id_type, id_key

)

select * from final
