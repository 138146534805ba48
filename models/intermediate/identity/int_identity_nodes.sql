{#-
    Every identifier of the identity graph, with the over-merge guards' verdict.

    An identifier that does not belong to one person is refused: it keeps no
    link and joins no component. In order of precedence:

      junk_value                      a placeholder from the seed identity_junk_identifiers
      linked_to_too_many_customers    more distinct CRM customers than the var
                                      identity_max_customers_per_identifier (default 3)
      linked_to_too_many_identifiers  more distinct identifiers of one other type
                                      (e.g. phones of an e-mail) than the var
                                      identity_max_identifiers_per_identifier (default 5)
      customers_conflict              a strong identifier shared by CRM customers who
                                      cannot be one person: both state a birth year, a
                                      gender, a phone or a loyalty card and they have
                                      none of them in common (a family mailbox)
      customers_uncorroborated        a strong identifier shared by two CRM customers
                                      who each use devices of their own (log in, get
                                      pushes) and share nothing else: no second strong
                                      identifier, no loyalty card. A birth year does not
                                      corroborate: strangers share one about once in
                                      sixty pairs, and family members sharing a mailbox
                                      often do (a demo build merged two such customers)

    CRM customer ids are never refused: a record is always someone. Devices
    shared by several persons are refused later, in int_identity_devices.

    link_signature summarises a strong identifier's accepted links; the
    incremental int_identity_components recomputes a component only when the
    signature or the first-seen time of one of its identifiers changed.
-#}
{%- set max_customers = var('identity_max_customers_per_identifier', 3) -%}
{%- set max_identifiers = var('identity_max_identifiers_per_identifier', 5) -%}

with edges as {{ inline_cte() }} (

    select * from {{ ref('int_identity_edges') }}

),

junk as {{ inline_cte() }} (

    select * from {{ ref('int_identity_junk_identifiers') }}

),

crm_customers as {{ inline_cte() }} (

    select * from {{ ref('stg_crm__customers_triaged') }}

),

endpoints as (

    select
        id_type_a as id_type,
        id_key_a as id_key,
        first_seen_at,
        last_seen_at
    from edges
    union all
    select
        id_type_b as id_type,
        id_key_b as id_key,
        first_seen_at,
        last_seen_at
    from edges
    where not is_self_pair

),

identifiers as (

    select
        id_type,
        id_key,
        case
            when id_type in {{ identity_device_id_types() }} then 'device'
            else 'strong'
        end as identifier_tier,
        min(first_seen_at) as first_seen_at,
        max(last_seen_at) as last_seen_at
    from endpoints
    group by id_type, id_key

),

neighbours as (

    select
        id_key_a as id_key,
        id_type_b as neighbour_type,
        id_key_b as neighbour_key
    from edges
    where not is_self_pair
    union
    select
        id_key_b as id_key,
        id_type_a as neighbour_type,
        id_key_a as neighbour_key
    from edges
    where not is_self_pair

),

neighbour_counts as (

    select
        id_key,
        neighbour_type,
        count(*) as n_neighbours
    from neighbours
    group by id_key, neighbour_type

),

link_counts as (

    select
        id_key,
        coalesce(max(case when neighbour_type = 'customer_id' then n_neighbours end), 0) as n_customers,
        coalesce(max(case when neighbour_type <> 'customer_id' then n_neighbours end), 0) as max_identifiers_of_a_type
    from neighbour_counts
    group by id_key

),

-- what each CRM customer (all its versions) says about the person behind it
crm_versions as (

    select *
    from crm_customers
    where row_status in ('kept', 'superseded')

),

customer_attributes as (

    -- 1900-01-01 is the classic placeholder birth date, not a birth year
    select
        customer_key,
        'birth_year' as attribute_name,
        cast(birth_year as {{ text_type() }}) as attribute_value
    from crm_versions
    where birth_year > 1900
    union
    select
        customer_key,
        'gender' as attribute_name,
        gender as attribute_value
    from crm_versions
    where gender is not null
    union
    select
        crm_versions.customer_key,
        'phone' as attribute_name,
        crm_versions.phone_key as attribute_value
    from crm_versions
    left join junk
        on crm_versions.phone_key = junk.id_key
    where crm_versions.phone_key is not null and junk.id_key is null
    union
    select
        customer_key,
        'loyalty_card' as attribute_name,
        loyalty_card_key as attribute_value
    from crm_versions
    where loyalty_card_key is not null

),

-- customers linked to a strong identifier that has two to the limit of them
shared_by_customers as (

    select
        neighbours.id_key,
        identifiers.id_type,
        neighbours.neighbour_key as customer_key
    from neighbours
    inner join identifiers
        on neighbours.id_key = identifiers.id_key
    inner join link_counts
        on neighbours.id_key = link_counts.id_key
    where
        neighbours.neighbour_type = 'customer_id'
        and identifiers.identifier_tier = 'strong'
        and identifiers.id_type <> 'customer_id'
        and link_counts.n_customers between 2 and {{ max_customers | int }}

),

customer_pairs as (

    select
        first_customer.id_key,
        first_customer.id_type,
        first_customer.customer_key as customer_key_1,
        second_customer.customer_key as customer_key_2
    from shared_by_customers as first_customer
    inner join shared_by_customers as second_customer
        on
            first_customer.id_key = second_customer.id_key
            and first_customer.customer_key < second_customer.customer_key

),

-- what each customer of a pair states (side 1 or 2); grouped, never joined value to value
pair_statements as (

    select
        customer_pairs.id_key,
        customer_pairs.customer_key_1,
        customer_pairs.customer_key_2,
        customer_attributes.attribute_name,
        customer_attributes.attribute_value,
        1 as side
    from customer_pairs
    inner join customer_attributes
        on customer_pairs.customer_key_1 = customer_attributes.customer_key
    where customer_attributes.attribute_name <> customer_pairs.id_type
    union all
    select
        customer_pairs.id_key,
        customer_pairs.customer_key_1,
        customer_pairs.customer_key_2,
        customer_attributes.attribute_name,
        customer_attributes.attribute_value,
        2 as side
    from customer_pairs
    inner join customer_attributes
        on customer_pairs.customer_key_2 = customer_attributes.customer_key
    where customer_attributes.attribute_name <> customer_pairs.id_type

),

pair_values as (

    select
        id_key,
        customer_key_1,
        customer_key_2,
        attribute_name,
        attribute_value,
        min(side) < max(side) as is_agreed
    from pair_statements
    group by id_key, customer_key_1, customer_key_2, attribute_name, attribute_value

),

pair_attributes as (

    select
        id_key,
        customer_key_1,
        customer_key_2,
        attribute_name,
        count(distinct side) = 2 as is_stated_by_both,
        bool_or(is_agreed) as is_agreed
    from (
        select
            pair_statements.*,
            pair_values.is_agreed
        from pair_statements
        inner join pair_values
            on
                pair_statements.id_key = pair_values.id_key
                and pair_statements.customer_key_1 = pair_values.customer_key_1
                and pair_statements.customer_key_2 = pair_values.customer_key_2
                and pair_statements.attribute_name = pair_values.attribute_name
                and pair_statements.attribute_value = pair_values.attribute_value
    ) as statements
    group by id_key, customer_key_1, customer_key_2, attribute_name

),

conflicts as (

    select
        id_key,
        {{ identity_sorted_distinct_list('attribute_name') }} as conflicting_attributes
    from pair_attributes
    where is_stated_by_both and not is_agreed
    group by id_key

),

-- the strong identifiers (other than junk) each customer of a pair is linked to
pair_links as (

    select
        customer_pairs.id_key,
        customer_pairs.customer_key_1,
        customer_pairs.customer_key_2,
        neighbours.neighbour_key,
        1 as side
    from customer_pairs
    inner join neighbours
        on customer_pairs.customer_key_1 = neighbours.id_key
    union all
    select
        customer_pairs.id_key,
        customer_pairs.customer_key_1,
        customer_pairs.customer_key_2,
        neighbours.neighbour_key,
        2 as side
    from customer_pairs
    inner join neighbours
        on customer_pairs.customer_key_2 = neighbours.id_key

),

pair_shared_links as (

    select
        pair_links.id_key,
        pair_links.customer_key_1,
        pair_links.customer_key_2,
        pair_links.neighbour_key
    from pair_links
    inner join identifiers
        on pair_links.neighbour_key = identifiers.id_key
    left join junk
        on pair_links.neighbour_key = junk.id_key
    where identifiers.identifier_tier = 'strong' and junk.id_key is null
    group by pair_links.id_key, pair_links.customer_key_1, pair_links.customer_key_2, pair_links.neighbour_key
    having min(pair_links.side) < max(pair_links.side)

),

pair_shared_identifiers as (

    select
        id_key,
        customer_key_1,
        customer_key_2,
        count(*) as n_shared_identifiers
    from pair_shared_links
    group by id_key, customer_key_1, customer_key_2

),

-- customers used on devices of their own (logins, app pushes)
active_customers as (

    select distinct id_key as customer_key
    from neighbours
    where neighbour_type in {{ identity_device_id_types() }}

),

uncorroborated as (

    select distinct customer_pairs.id_key
    from customer_pairs
    inner join active_customers as first_active
        on customer_pairs.customer_key_1 = first_active.customer_key
    inner join active_customers as second_active
        on customer_pairs.customer_key_2 = second_active.customer_key
    left join pair_shared_identifiers
        on
            customer_pairs.id_key = pair_shared_identifiers.id_key
            and customer_pairs.customer_key_1 = pair_shared_identifiers.customer_key_1
            and customer_pairs.customer_key_2 = pair_shared_identifiers.customer_key_2
    left join pair_attributes
        on
            customer_pairs.id_key = pair_attributes.id_key
            and customer_pairs.customer_key_1 = pair_attributes.customer_key_1
            and customer_pairs.customer_key_2 = pair_attributes.customer_key_2
            and pair_attributes.attribute_name = 'loyalty_card'
            and pair_attributes.is_agreed
    where
        coalesce(pair_shared_identifiers.n_shared_identifiers, 0) < 2
        and pair_attributes.id_key is null

),

verdicts as (

    select
        identifiers.id_type,
        identifiers.id_key,
        identifiers.identifier_tier,
        identifiers.first_seen_at,
        identifiers.last_seen_at,
        coalesce(link_counts.n_customers, 0) as n_customers,
        case
            when junk.id_key is not null then 'junk_value'
            when identifiers.id_type = 'customer_id' then null
            when coalesce(link_counts.n_customers, 0) > {{ max_customers | int }} then 'linked_to_too_many_customers'
            when coalesce(link_counts.max_identifiers_of_a_type, 0) > {{ max_identifiers | int }}
                then 'linked_to_too_many_identifiers'
            when conflicts.id_key is not null then 'customers_conflict'
            when uncorroborated.id_key is not null then 'customers_uncorroborated'
        end as refusal_reason,
        conflicts.conflicting_attributes
    from identifiers
    left join link_counts
        on identifiers.id_key = link_counts.id_key
    left join junk
        on identifiers.id_key = junk.id_key
    left join conflicts
        on identifiers.id_key = conflicts.id_key
    left join uncorroborated
        on identifiers.id_key = uncorroborated.id_key

),

accepted_strong_links as (

    select
        neighbours.id_key,
        neighbours.neighbour_key
    from neighbours
    inner join verdicts as node
        on neighbours.id_key = node.id_key
    inner join verdicts as neighbour
        on neighbours.neighbour_key = neighbour.id_key
    where
        node.identifier_tier = 'strong'
        and neighbour.identifier_tier = 'strong'
        and node.refusal_reason is null
        and neighbour.refusal_reason is null

),

signatures as (

    select
        id_key,
        count(*) as n_strong_links,
        {{ identity_set_signature('neighbour_key') }} as link_signature
    from accepted_strong_links
    group by id_key

),

final as (

    select
        verdicts.id_type,
        verdicts.id_key,
        verdicts.identifier_tier,
        verdicts.first_seen_at,
        verdicts.last_seen_at,
        verdicts.n_customers,
        verdicts.refusal_reason,
        verdicts.refusal_reason is not null as is_refused,
        case
            when verdicts.refusal_reason = 'customers_conflict' then verdicts.conflicting_attributes
        end as conflicting_attributes,
        case
            when verdicts.identifier_tier = 'strong' and verdicts.refusal_reason is null
                then coalesce(signatures.n_strong_links, 0)
        end as n_strong_links,
        case
            when verdicts.identifier_tier = 'strong' and verdicts.refusal_reason is null
                then coalesce(signatures.link_signature, 'no links')
        end as link_signature
    from verdicts
    left join signatures
        on verdicts.id_key = signatures.id_key

)

select * from final
