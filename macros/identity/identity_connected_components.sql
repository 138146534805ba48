{#-
    Connected components of an undirected graph, as a subquery.

      nodes   a relation or CTE with a column `node_no` (integer, unique)
      links   a relation or CTE with columns `src`, `dst` (node_no values), holding
              every link in both directions; self links are allowed and ignored

    Returns (node_no, component_no) for every node, where component_no is the
    smallest node_no of the node's component: numbering the nodes in the order
    of preference makes component_no the component's preferred member.

    Both implementations iterate until nothing changes, so a component of any
    diameter resolves. They share a linear prefix that settles almost every
    component without iteration:

      1. label(v) = smallest node_no within two hops of v (two grouped joins);
      2. links whose two ends got different labels form a residual graph over
         labels, usually tiny (long chains, components wider than two hops);
      3. only the residual graph is iterated; every node takes its label's result.

    A component of the residual graph contains the component's smallest node
    (which labels itself), so the result is exact (see docs/decisions.md).

    The var `identity_portable_components` (default false) forces the portable
    implementation on any adapter: for benchmarks and for engines whose
    recursive CTEs lack DuckDB's USING KEY. The `lint` target (sqlfluff) renders
    it too: sqlfluff's DuckDB grammar cannot parse USING KEY in a nested WITH.
-#}
{% macro identity_connected_components(nodes, links) -%}
    {%- if var('identity_portable_components', false) or target.name == 'lint' -%}
        {{ return(cdp.default__identity_connected_components(nodes, links)) }}
    {%- endif -%}
    {{ return(adapter.dispatch('identity_connected_components', 'cdp')(nodes, links)) }}
{%- endmacro %}

{#-
    DuckDB: the residual graph is iterated with `WITH RECURSIVE ... USING KEY`
    (one row per node, replaced as its label falls), with pointer jumping: when
    a node's label falls, the nodes labelled with that node follow at once, so
    a chain of length d settles in about log2(d) iterations instead of d.
-#}
{% macro duckdb__identity_connected_components(nodes, links) -%}
(
    with recursive

    one_hop as (
        select
            graph_nodes.node_no,
            least(graph_nodes.node_no, coalesce(min(graph_links.dst), graph_nodes.node_no)) as label
        from {{ nodes }} as graph_nodes
        left join {{ links }} as graph_links
            on graph_nodes.node_no = graph_links.src
        group by graph_nodes.node_no
    ),

    two_hop as (
        select
            one_hop.node_no,
            least(one_hop.label, coalesce(min(neighbour.label), one_hop.label)) as label
        from one_hop
        left join {{ links }} as graph_links
            on one_hop.node_no = graph_links.src
        left join one_hop as neighbour
            on graph_links.dst = neighbour.node_no
        group by one_hop.node_no, one_hop.label
    ),

    residual_links as (
        select distinct
            source_label.label as src,
            target_label.label as dst
        from {{ links }} as graph_links
        inner join two_hop as source_label
            on graph_links.src = source_label.node_no
        inner join two_hop as target_label
            on graph_links.dst = target_label.node_no
        where source_label.label <> target_label.label
    ),

    residual_nodes as (
        select distinct src as node_no
        from residual_links
    ),

    residual_components (node_no, component_no) using key (node_no) as (
        select
            node_no,
            node_no
        from residual_nodes
        union
        select
            proposals.node_no,
            min(proposals.component_no)
        from (
            select
                residual_links.dst as node_no,
                residual_components.component_no
            from residual_components
            inner join residual_links
                on residual_components.node_no = residual_links.src
            union all
            select
                pointing.node_no,
                residual_components.component_no
            from residual_components
            inner join recurring.residual_components as pointing
                on residual_components.node_no = pointing.component_no
        ) as proposals
        inner join recurring.residual_components as known
            on proposals.node_no = known.node_no
        group by proposals.node_no
        having min(proposals.component_no) < min(known.component_no)
    )

    select
        two_hop.node_no,
        coalesce(residual_components.component_no, two_hop.label) as component_no
    from two_hop
    left join residual_components
        on two_hop.label = residual_components.node_no
)
{%- endmacro %}

{#-
    Any engine with standard recursive CTEs: the residual graph is closed by
    semi-naive reachability (each label spreads to everything it reaches; the
    smallest wins). Correct everywhere; its work grows with the square of a
    residual component's size, which the over-merge guards keep small.
-#}
{% macro default__identity_connected_components(nodes, links) -%}
(
    with recursive

    one_hop as (
        select
            graph_nodes.node_no,
            least(graph_nodes.node_no, coalesce(min(graph_links.dst), graph_nodes.node_no)) as label
        from {{ nodes }} as graph_nodes
        left join {{ links }} as graph_links
            on graph_nodes.node_no = graph_links.src
        group by graph_nodes.node_no
    ),

    two_hop as (
        select
            one_hop.node_no,
            least(one_hop.label, coalesce(min(neighbour.label), one_hop.label)) as label
        from one_hop
        left join {{ links }} as graph_links
            on one_hop.node_no = graph_links.src
        left join one_hop as neighbour
            on graph_links.dst = neighbour.node_no
        group by one_hop.node_no, one_hop.label
    ),

    residual_links as (
        select distinct
            source_label.label as src,
            target_label.label as dst
        from {{ links }} as graph_links
        inner join two_hop as source_label
            on graph_links.src = source_label.node_no
        inner join two_hop as target_label
            on graph_links.dst = target_label.node_no
        where source_label.label <> target_label.label
    ),

    residual_reach (node_no, component_no) as (
        select distinct
            src,
            src
        from residual_links
        union
        select
            residual_links.dst,
            residual_reach.component_no
        from residual_reach
        inner join residual_links
            on residual_reach.node_no = residual_links.src
    ),

    residual_components as (
        select
            node_no,
            min(component_no) as component_no
        from residual_reach
        group by node_no
    )

    select
        two_hop.node_no,
        coalesce(residual_components.component_no, two_hop.label) as component_no
    from two_hop
    left join residual_components
        on two_hop.label = residual_components.node_no
)
{%- endmacro %}
