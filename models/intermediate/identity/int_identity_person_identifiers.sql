{#-
    The identity map: every identifier that belongs to a person, with the
    person key. Strong identifiers come from their component; devices from
    int_identity_devices (attached to one person, or a person of their own).
    Refused identifiers are absent: see int_identity_refused_identifiers.
-#}
with components as (

    select * from {{ ref('int_identity_components') }}

),

devices as (

    select * from {{ ref('int_identity_devices') }}

),

final as (

    select
        id_type,
        id_key,
        person_key,
        'component' as resolution,
        anchor_type,
        anchor_key,
        id_key = anchor_key as is_anchor,
        first_seen_at
    from components
    union all
    select
        id_type,
        id_key,
        person_key,
        case resolution
            when 'attached' then 'attached_device'
            else 'standalone_device'
        end as resolution,
        anchor_type,
        anchor_key,
        id_key = anchor_key as is_anchor,
        first_seen_at
    from devices
    where resolution in ('attached', 'standalone')

)

select * from final
