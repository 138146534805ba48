{#-
    Device identifiers (cookie / app anonymous ids, push tokens) and the person
    each belongs to.

    A device never joins two persons: it attaches to the person its accepted
    links (logins, pushes to a known customer) point to, provided they all point
    to one person. Links to two or more persons make it a shared device (a
    family computer, a shop terminal): it is refused and attached to no one. A
    device no customer ever used is a person of its own (a visitor who only
    answered the cookie banner), keyed by itself.
-#}
with nodes as {{ inline_cte() }} (

    select * from {{ ref('int_identity_nodes') }}

),

edges as {{ inline_cte() }} (

    select * from {{ ref('int_identity_edges') }}

),

components as (

    select * from {{ ref('int_identity_components') }}

),

devices as (

    select *
    from nodes
    where identifier_tier = 'device' and not is_refused

),

device_links as (

    select
        edges.id_key_b as device_key,
        edges.id_key_a as strong_key
    from edges
    where not edges.is_self_pair and edges.id_type_b in {{ identity_device_id_types() }}
    union
    select
        edges.id_key_a as device_key,
        edges.id_key_b as strong_key
    from edges
    where not edges.is_self_pair and edges.id_type_a in {{ identity_device_id_types() }}

),

device_persons as (

    select
        devices.id_key,
        count(distinct components.person_key) as n_persons,
        min(components.person_key) as person_key,
        min(components.anchor_type) as anchor_type,
        min(components.anchor_key) as anchor_key
    from devices
    inner join device_links
        on devices.id_key = device_links.device_key
    inner join components
        on device_links.strong_key = components.id_key
    group by devices.id_key

),

resolved as (

    select
        devices.id_type,
        devices.id_key,
        devices.first_seen_at,
        devices.last_seen_at,
        devices.n_customers,
        device_persons.person_key as linked_person_key,
        device_persons.anchor_type as linked_anchor_type,
        device_persons.anchor_key as linked_anchor_key,
        coalesce(device_persons.n_persons, 0) as n_persons,
        case
            when device_persons.n_persons > 1 then 'shared'
            when device_persons.n_persons = 1 then 'attached'
            else 'standalone'
        end as resolution
    from devices
    left join device_persons
        on devices.id_key = device_persons.id_key

),

final as (

    select
        id_type,
        id_key,
        resolution,
        n_customers,
        n_persons,
        first_seen_at,
        last_seen_at,
        case
            when resolution = 'attached' then linked_person_key
            when resolution = 'standalone'
                then {{ pseudonymise('id_type', 'id_key', domain='person') }}
        end as person_key,
        case
            when resolution = 'attached' then linked_anchor_type
            when resolution = 'standalone' then id_type
        end as anchor_type,
        case
            when resolution = 'attached' then linked_anchor_key
            when resolution = 'standalone' then id_key
        end as anchor_key,
        case when resolution = 'shared' then 'shared_device' end as refusal_reason
    from resolved

)

select * from final
