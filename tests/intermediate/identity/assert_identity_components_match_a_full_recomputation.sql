{{ config(tags=['identity_full_check']) }}

{#-
    The incremental int_identity_components equals a full recomputation: the
    connected components of today's accepted strong links, computed from
    scratch, give every identifier the anchor the model holds, and the model
    holds exactly today's accepted strong identifiers. Costs one full
    components pass per build; exclude with `--exclude tag:identity_full_check`.
-#}
with nodes as (

    select * from {{ ref('int_identity_nodes') }}

),

edges as {{ inline_cte() }} (

    select * from {{ ref('int_identity_edges') }}

),

components as (

    select * from {{ ref('int_identity_components') }}

),

numbered as (

    select
        id_key,
        row_number() over (
            order by first_seen_at asc nulls last, {{ identity_id_type_rank('id_type') }} asc, id_key asc
        ) as node_no
    from nodes
    where identifier_tier = 'strong' and not is_refused

),

links as (

    select
        source_node.node_no as src,
        target_node.node_no as dst
    from edges
    inner join numbered as source_node
        on edges.id_key_a = source_node.id_key
    inner join numbered as target_node
        on edges.id_key_b = target_node.id_key
    where not edges.is_self_pair
    union
    select
        target_node.node_no as src,
        source_node.node_no as dst
    from edges
    inner join numbered as source_node
        on edges.id_key_a = source_node.id_key
    inner join numbered as target_node
        on edges.id_key_b = target_node.id_key
    where not edges.is_self_pair

),

recomputed as (

    select
        numbered.id_key,
        anchors.id_key as anchor_key
    from {{ identity_connected_components('numbered', 'links') }} as connected
    inner join numbered
        on connected.node_no = numbered.node_no
    inner join numbered as anchors
        on connected.component_no = anchors.node_no

),

final as (

    select
        recomputed.anchor_key as recomputed_anchor_key,
        components.anchor_key as stored_anchor_key,
        coalesce(recomputed.id_key, components.id_key) as id_key
    from recomputed
    full outer join components
        on recomputed.id_key = components.id_key
    where recomputed.anchor_key is distinct from components.anchor_key

)

select * from final
