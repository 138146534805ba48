{#-
    The macro identity_connected_components, both implementations (DuckDB's
    USING KEY with pointer jumping, and the portable semi-naive recursion), on
    graphs with a known answer: a chain of 700 listed from its far end, a cycle,
    a star, two chains joined in the middle, a ladder and isolated nodes. Each
    graph is one component whose number is its smallest node. Returns the
    nodes either implementation got wrong.
-#}
with graph_links as (

    -- chain: 1000..1699, listed from the far end
    select
        1699 - range as src,
        1698 - range as dst
    from range(699)
    union all
    -- cycle: 2000..2299
    select
        2000 + range as src,
        2000 + (range + 1) % 300 as dst
    from range(300)
    union all
    -- star around 3050 over 3000..3099
    select
        3050 as src,
        3000 + range as dst
    from range(100)
    where range <> 50
    union all
    -- two chains 4000..4199 and 4200..4399 joined in their middles
    select
        4000 + range as src,
        4001 + range as dst
    from range(199)
    union all
    select
        4200 + range as src,
        4201 + range as dst
    from range(199)
    union all
    select
        4100 as src,
        4300 as dst
    union all
    -- ladder: 5000..5199 in two rails with rungs
    select
        5000 + range as src,
        5002 + range as dst
    from range(198)
    union all
    select
        5000 + 2 * range as src,
        5001 + 2 * range as dst
    from range(100)

),

graph_nodes as (

    select src as node_no from graph_links
    union
    select dst as node_no from graph_links
    union
    -- isolated nodes
    select 9000 + range as node_no from range(5)

),

links as (

    select
        src,
        dst
    from graph_links
    union
    select
        dst as src,
        src as dst
    from graph_links

),

expected as (

    select
        node_no,
        case
            when node_no >= 9000 then node_no
            else cast(floor(node_no / 1000) * 1000 as bigint)
        end as component_no
    from graph_nodes

),

default_result as (

    select * from {{ cdp.default__identity_connected_components('graph_nodes', 'links') }} as connected

),

adapter_result as (

    select * from {{ identity_connected_components('graph_nodes', 'links') }} as connected

),

final as (

    select
        expected.node_no,
        expected.component_no as expected_component_no,
        default_result.component_no as default_component_no,
        adapter_result.component_no as adapter_component_no
    from expected
    full outer join default_result
        on expected.node_no = default_result.node_no
    full outer join adapter_result
        on expected.node_no = adapter_result.node_no
    where
        expected.component_no is distinct from default_result.component_no
        or expected.component_no is distinct from adapter_result.component_no

)

select * from final
