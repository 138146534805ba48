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

    `graph` (optional) is the text of the WITH clause that defines `nodes` and
    `links` as CTEs (`with ... links as (...)`). The SQL implementations ignore
    it; spark__ needs it, to materialise the graph before it iterates.

    The var `identity_portable_components` (default false) forces the portable
    implementation on any adapter: for benchmarks and for engines whose
    recursive CTEs lack DuckDB's USING KEY. The `lint` target (sqlfluff) renders
    it too: sqlfluff's DuckDB grammar cannot parse USING KEY in a nested WITH.
-#}
{% macro identity_connected_components(nodes, links, graph=none) -%}
    {%- if var('identity_portable_components', false) or target.name == 'lint' -%}
        {{ return(cdp.default__identity_connected_components(nodes, links, graph)) }}
    {%- endif -%}
    {{ return(adapter.dispatch('identity_connected_components', 'cdp')(nodes, links, graph)) }}
{%- endmacro %}

{#-
    DuckDB: the residual graph is iterated with `WITH RECURSIVE ... USING KEY`
    (one row per node, replaced as its label falls), with pointer jumping: when
    a node's label falls, the nodes labelled with that node follow at once, so
    a chain of length d settles in about log2(d) iterations instead of d.
-#}
{% macro duckdb__identity_connected_components(nodes, links, graph=none) -%}
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
{% macro default__identity_connected_components(nodes, links, graph=none) -%}
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

{#-
    Spark: no recursive CTE can do this there (Spark 4.3's WITH RECURSIVE takes
    UNION ALL only, and refuses aggregates over the recursive reference), so the
    macro iterates, at execution time, with run_query, before the model's query
    runs (docs/portability.md, "Identity on Spark"):

      1. the graph (`graph` + `select ... from nodes / links`) is written once
         as two scratch tables beside the model, `<model>__cc_nodes` and
         `<model>__cc_links` (tables, not cached views: dropping a cached view
         uncaches every view computed from it, so rounds could not be
         dropped as they go);
      2. every node starts labelled with itself; a round gives each node the
         smallest of its label, its neighbours' labels and its label's label
         (pointer jumping: a chain of length d settles in about log2(d) rounds,
         never more than d);
      3. after each round, a count of the labels that changed; none changed:
         the labels are the components (every label is a node of the same
         component and can only fall, and at the fixpoint it is constant over
         every link, so it is the component's smallest node_no).

    The var `identity_max_rounds` (default 64) caps the rounds: a graph that
    has not converged by then FAILS the model (a compiler error names the cap;
    the table the last build left stays). It never returns a partial result.
    The scratch tables (graph, and two label tables used in turn, `__cc_a` and
    `__cc_b`) hold pseudonyms only, as the model does; identity_connected_components_release
    (the model's post-hook on Spark, and the macro's first step) drops them. The node numbering of `graph`
    must be deterministic (a total order): the graph is read three times.
-#}
{% macro spark__identity_connected_components(nodes, links, graph=none) -%}
    {%- if not execute -%}
        {{ return("(select cast(null as bigint) as node_no, cast(null as bigint) as component_no)") }}
    {%- endif -%}
    {%- if graph is none -%}
        {{ exceptions.raise_compiler_error("cdp: spark__identity_connected_components needs `graph`, the WITH clause that defines " ~ nodes ~ " and " ~ links ~ " (it iterates on materialised tables)") }}
    {%- endif -%}
    {%- set prefix = cdp.identity_components_scratch_prefix() -%}
    {%- set max_rounds = var('identity_max_rounds', 64) | int -%}
    {%- do cdp.identity_connected_components_release() -%}
    {%- do run_query("create table " ~ prefix ~ "_nodes as " ~ graph ~ " select distinct node_no from " ~ nodes) -%}
    {%- do run_query("create table " ~ prefix ~ "_links as " ~ graph ~ " select distinct src, dst from " ~ links ~ " where src <> dst") -%}
    {%- do run_query("create table " ~ prefix ~ "_a as select node_no, node_no as label from " ~ prefix ~ "_nodes") -%}
    {%- set state = {'current': prefix ~ '_a', 'next': prefix ~ '_b', 'rounds': 0, 'converged': false} -%}
    {%- for round in range(max_rounds) if not state.converged -%}
        {%- do run_query("drop table if exists " ~ state.next) -%}
        {%- do run_query(
            "create table " ~ state.next ~ " as select labels.node_no, least(min(labels.label), min(jump.label), "
            ~ "coalesce(min(neighbour.label), min(labels.label))) as label from " ~ state.current ~ " as labels "
            ~ "inner join " ~ state.current ~ " as jump on labels.label = jump.node_no "
            ~ "left join " ~ prefix ~ "_links as graph_links on labels.node_no = graph_links.src "
            ~ "left join " ~ state.current ~ " as neighbour on graph_links.dst = neighbour.node_no "
            ~ "group by labels.node_no") -%}
        {%- set changed = run_query(
            "select count(*) from " ~ state.current ~ " as before_round inner join " ~ state.next
            ~ " as after_round on before_round.node_no = after_round.node_no where before_round.label <> after_round.label"
            ).columns[0].values()[0] -%}
        {%- do state.update({'current': state.next, 'next': state.current, 'rounds': state.rounds + 1, 'converged': changed == 0}) -%}
    {%- endfor -%}
    {%- if not state.converged -%}
        {%- do cdp.identity_connected_components_release() -%}
        {{ exceptions.raise_compiler_error("cdp: identity_connected_components did not converge in " ~ max_rounds
            ~ " rounds (var identity_max_rounds) for " ~ this ~ "; nothing was written") }}
    {%- endif -%}
    {{ log("cdp: " ~ this.identifier ~ ": connected components converged in " ~ state.rounds ~ " rounds", info=false) }}
    (select node_no, label as component_no from {{ state.current }})
{%- endmacro %}

{#- The prefix of spark__identity_connected_components' scratch tables for the model being built. -#}
{% macro identity_components_scratch_prefix() -%}
    {{ return(adapter.dispatch('identity_components_scratch_prefix', 'cdp')()) }}
{%- endmacro %}

{% macro default__identity_components_scratch_prefix() -%}
    {{ return(this.schema ~ '.' ~ this.identifier ~ '__cc') }}
{%- endmacro %}

{#-
    Drops the scratch tables spark__identity_connected_components left (a
    post-hook on Spark; also run before it starts). Renders nothing:
    it runs its drops itself. Nothing to drop on engines that do not iterate.
-#}
{% macro identity_connected_components_release() -%}
    {{ return(adapter.dispatch('identity_connected_components_release', 'cdp')()) }}
{%- endmacro %}

{% macro default__identity_connected_components_release() -%}
{%- endmacro %}

{% macro spark__identity_connected_components_release() -%}
    {%- if execute -%}
        {%- set prefix = cdp.identity_components_scratch_prefix() -%}
        {%- for suffix in ['_a', '_b', '_links', '_nodes'] -%}
            {%- do run_query("drop table if exists " ~ prefix ~ suffix) -%}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro %}
