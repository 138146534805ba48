{#-
    On Spark a table, rebuilt whole on every run: Parquet tables refuse the
    delete of the incremental path (docs/portability.md, "Identity on Spark");
    the post-hook there drops the connected components' scratch tables.
-#}
{{ config(
    materialized=('table' if target.type == 'spark' else 'incremental'),
    incremental_strategy='delete+insert',
    unique_key='id_key',
    on_schema_change='fail',
    post_hook=("{{ identity_connected_components_release() }}" if target.type == 'spark' else "
        delete from {{ this }} as components
        where not exists (
            select 1
            from {{ ref('int_identity_nodes') }} as nodes
            where
                nodes.id_key = components.id_key
                and nodes.identifier_tier = 'strong'
                and not nodes.is_refused
        )
    "),
) }}

{#-
    Persons: connected components of the strong identifiers (CRM customer id,
    e-mail, phone, loyalty card) over the links the guards accepted.

    The anchor of a component is its earliest identifier (first seen; ties go
    to the CRM record, then to the smaller pseudonym); the person key is the
    anchor's pseudonym in the `person` domain. It is a function of the
    component's members only, so unrelated data never changes it, and when two
    persons merge the older one's key survives.

    Incremental: only components touched by a change are recomputed. A
    strong identifier has changed when it is new, gone (refused now, or its
    evidence erased), or its accepted links or first-seen time differ from the
    last run (link_signature). Every identifier of a component that held a
    changed identifier is recomputed, together with the changed ones; that set
    is closed under the accepted links, so the result equals a full rebuild.
    Identifiers that are gone are deleted by the post-hook.
-#}
{% set graph %}with nodes as (

    select * from {{ ref('int_identity_nodes') }}

),

edges as {{ inline_cte() }} (

    select * from {{ ref('int_identity_edges') }}

),

strong_nodes as (

    select
        id_type,
        id_key,
        first_seen_at,
        link_signature
    from nodes
    where identifier_tier = 'strong' and not is_refused

),

{% if is_incremental() %}

    previous as (

        select
            id_key,
            first_seen_at,
            link_signature,
            anchor_key
        from {{ this }}

    ),

    changed as (

        select
            coalesce(strong_nodes.id_key, previous.id_key) as id_key,
            previous.anchor_key as previous_anchor_key
        from strong_nodes
        full outer join previous
            on strong_nodes.id_key = previous.id_key
        where
            strong_nodes.id_key is null
            or previous.id_key is null
            or strong_nodes.link_signature <> previous.link_signature
            or strong_nodes.first_seen_at is distinct from previous.first_seen_at

    ),

    affected_anchors as (

        select distinct previous_anchor_key as anchor_key
        from changed
        where previous_anchor_key is not null

    ),

    affected as (

        select id_key from changed
        union
        select previous.id_key
        from previous
        inner join affected_anchors
            on previous.anchor_key = affected_anchors.anchor_key

    ),

    scope as (

        select strong_nodes.*
        from strong_nodes
        inner join affected
            on strong_nodes.id_key = affected.id_key

    ),

{% else %}

    scope as (

        select * from strong_nodes

    ),

{% endif %}

-- numbered in order of preference: a component's smallest number is its anchor
numbered as (

    select
        id_type,
        id_key,
        first_seen_at,
        link_signature,
        row_number() over (
            order by first_seen_at asc nulls last, {{ identity_id_type_rank('id_type') }} asc, id_key asc
        ) as node_no
    from scope

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

){% endset %}{{ graph }},

components as (

    select
        node_no,
        component_no
    from {{ identity_connected_components('numbered', 'links', graph) }} as connected

),

anchors as (

    select
        numbered.node_no as component_no,
        numbered.id_type as anchor_type,
        numbered.id_key as anchor_key,
        {{ pseudonymise('numbered.id_type', 'numbered.id_key', domain='person') }} as person_key
    from numbered
    where numbered.node_no in (select distinct components.component_no from components)

),

final as (

    select
        numbered.id_type,
        numbered.id_key,
        anchors.person_key,
        anchors.anchor_type,
        anchors.anchor_key,
        numbered.first_seen_at,
        numbered.link_signature
    from numbered
    inner join components
        on numbered.node_no = components.node_no
    inner join anchors
        on components.component_no = anchors.component_no

)

select * from final
