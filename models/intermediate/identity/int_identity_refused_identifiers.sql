{#-
    What the over-merge guards refused, and why: junk placeholders, identifiers
    shared by too many customers or by customers who cannot be one person, and
    devices used by several persons. A refused identifier belongs to no person
    and none of its links is used; n_refused_links counts the links dropped.
-#}
with nodes as (

    select * from {{ ref('int_identity_nodes') }}

),

devices as (

    select * from {{ ref('int_identity_devices') }}

),

edges as {{ inline_cte() }} (

    select * from {{ ref('int_identity_edges') }}

),

refused as (

    select
        id_type,
        id_key,
        identifier_tier,
        refusal_reason,
        conflicting_attributes,
        n_customers,
        cast(null as bigint) as n_persons,
        first_seen_at,
        last_seen_at
    from nodes
    where is_refused
    union all
    select
        id_type,
        id_key,
        'device' as identifier_tier,
        refusal_reason,
        cast(null as {{ text_type() }}) as conflicting_attributes,
        n_customers,
        n_persons,
        first_seen_at,
        last_seen_at
    from devices
    where refusal_reason is not null

),

refused_link_ends as (

    select refused.id_key
    from refused
    inner join edges
        on refused.id_key = edges.id_key_a
    where not edges.is_self_pair
    union all
    select refused.id_key
    from refused
    inner join edges
        on refused.id_key = edges.id_key_b
    where not edges.is_self_pair

),

refused_links as (

    select
        id_key,
        count(*) as n_refused_links
    from refused_link_ends
    group by id_key

),

final as (

    select
        refused.id_type,
        refused.id_key,
        refused.identifier_tier,
        refused.refusal_reason,
        refused.conflicting_attributes,
        refused.n_customers,
        refused.n_persons,
        refused.first_seen_at,
        refused.last_seen_at,
        coalesce(refused_links.n_refused_links, 0) as n_refused_links
    from refused
    left join refused_links
        on refused.id_key = refused_links.id_key

)

select * from final
