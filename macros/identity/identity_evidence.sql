{#-
    The identity graph's evidence, record by record: one row per pair of
    identifiers a staged record shows together (a self pair when it names one
    identifier), from the kept and superseded rows of the five triaged staging
    models, with the record's evidence_checksum (row_checksum of the row).

    `bounds` names a relation (or CTE) of (source_model, loaded_until): with
    `newer`, only the rows loaded after each source model's bound (all its rows
    when it has none) - what an incremental run folds in; without, only the rows
    loaded up to each bound - what earlier runs folded, which
    identity_unfold_changed_sources compares with what they recorded.
-#}
{% macro identity_evidence(bounds, newer=true) -%}
    {{ return(adapter.dispatch('identity_evidence', 'cdp')(bounds, newer)) }}
{%- endmacro %}

{% macro default__identity_evidence(bounds, newer) -%}
{%- set join = 'left join' if newer else 'inner join' -%}
{%- set window = "> coalesce(bound.loaded_until, timestamp '1900-01-01')" if newer else '<= bound.loaded_until' -%}
with crm_customers as (

    select * from {{ ref('stg_crm__customers_triaged') }}

),

web_events as (

    select * from {{ ref('stg_web__events_triaged') }}

),

orders as (

    select * from {{ ref('stg_shop__orders_triaged') }}

),

message_events as (

    select * from {{ ref('stg_messaging__message_events_triaged') }}

),

consent_events as (

    select * from {{ ref('stg_privacy__consent_events_triaged') }}

),

-- how far each source model was read by earlier runs
crm_versions as (

    select crm_customers.*
    from crm_customers
    {{ join }} {{ bounds }} as bound
        on bound.source_model = 'stg_crm__customers_triaged'
    where
        crm_customers.row_status in ('kept', 'superseded')
        and crm_customers._loaded_at {{ window }}

),

crm_evidence as (

    -- the record itself, seen when it was created
    select
        'stg_crm__customers_triaged' as source_model,
        customer_key as record_key,
        'customer_id' as id_type_a,
        customer_key as id_key_a,
        'customer_id' as id_type_b,
        customer_key as id_key_b,
        coalesce(created_at, updated_at) as observed_at,
        _loaded_at
    from crm_versions
    {%- for id_type, column in [('email', 'email_key'), ('phone', 'phone_key'), ('loyalty_card', 'loyalty_card_key')] %}
    union all
    -- each identifier of a version, seen when the version was written
    select
        'stg_crm__customers_triaged' as source_model,
        customer_key as record_key,
        'customer_id' as id_type_a,
        customer_key as id_key_a,
        '{{ id_type }}' as id_type_b,
        {{ column }} as id_key_b,
        coalesce(updated_at, created_at) as observed_at,
        _loaded_at
    from crm_versions
    where {{ column }} is not null
    {%- endfor %}

),

-- a logged-in event ties the cookie (or app install) to the customer
web_evidence as (

    select
        'stg_web__events_triaged' as source_model,
        web_events.event_key as record_key,
        'customer_id' as id_type_a,
        web_events.customer_key as id_key_a,
        'anonymous_id' as id_type_b,
        web_events.anonymous_key as id_key_b,
        web_events.event_at as observed_at,
        web_events._loaded_at
    from web_events
    {{ join }} {{ bounds }} as bound
        on bound.source_model = 'stg_web__events_triaged'
    where
        web_events.row_status in ('kept', 'superseded')
        and web_events.customer_key is not null
        and web_events.anonymous_key is not null
        and web_events._loaded_at {{ window }}

),

-- an order ties its customer (or, for a guest, its e-mail) to the checkout contacts
order_hubs as (

    select
        orders.order_key,
        orders.email_key,
        orders.phone_key,
        orders.ordered_at,
        orders._loaded_at,
        case
            when orders.customer_key is not null then 'customer_id'
            when orders.email_key is not null then 'email'
            when orders.phone_key is not null then 'phone'
        end as hub_type,
        coalesce(orders.customer_key, orders.email_key, orders.phone_key) as hub_key
    from orders
    {{ join }} {{ bounds }} as bound
        on bound.source_model = 'stg_shop__orders_triaged'
    where
        orders.row_status in ('kept', 'superseded')
        and orders._loaded_at {{ window }}

),

order_evidence as (

    select
        'stg_shop__orders_triaged' as source_model,
        order_key as record_key,
        hub_type as id_type_a,
        hub_key as id_key_a,
        hub_type as id_type_b,
        hub_key as id_key_b,
        ordered_at as observed_at,
        _loaded_at
    from order_hubs
    where hub_key is not null
    union all
    select
        'stg_shop__orders_triaged' as source_model,
        order_key as record_key,
        hub_type as id_type_a,
        hub_key as id_key_a,
        'email' as id_type_b,
        email_key as id_key_b,
        ordered_at as observed_at,
        _loaded_at
    from order_hubs
    where email_key is not null and hub_type <> 'email'
    union all
    select
        'stg_shop__orders_triaged' as source_model,
        order_key as record_key,
        hub_type as id_type_a,
        hub_key as id_key_a,
        'phone' as id_type_b,
        phone_key as id_key_b,
        ordered_at as observed_at,
        _loaded_at
    from order_hubs
    where phone_key is not null and hub_type <> 'phone'

),

-- a message ties the customer to the address it was sent to
message_evidence as (

    select
        'stg_messaging__message_events_triaged' as source_model,
        message_events.message_event_key as record_key,
        case
            when message_events.customer_key is not null then 'customer_id'
            else message_events.recipient_type
        end as id_type_a,
        coalesce(message_events.customer_key, message_events.recipient_key) as id_key_a,
        case
            when message_events.recipient_key is not null then message_events.recipient_type
            else 'customer_id'
        end as id_type_b,
        coalesce(message_events.recipient_key, message_events.customer_key) as id_key_b,
        message_events.event_at as observed_at,
        message_events._loaded_at
    from message_events
    {{ join }} {{ bounds }} as bound
        on bound.source_model = 'stg_messaging__message_events_triaged'
    where
        message_events.row_status in ('kept', 'superseded')
        and coalesce(message_events.customer_key, message_events.recipient_key) is not null
        and message_events._loaded_at {{ window }}

),

-- consent and subject requests name one identifier: the node joins the graph
-- only through identifiers it shares with other records
consent_evidence as (

    select
        'stg_privacy__consent_events_triaged' as source_model,
        consent_events.consent_event_key as record_key,
        consent_events.subject_id_type as id_type_a,
        consent_events.subject_key as id_key_a,
        consent_events.subject_id_type as id_type_b,
        consent_events.subject_key as id_key_b,
        consent_events.captured_at as observed_at,
        consent_events._loaded_at
    from consent_events
    {{ join }} {{ bounds }} as bound
        on bound.source_model = 'stg_privacy__consent_events_triaged'
    where
        consent_events.row_status in ('kept', 'superseded')
        and consent_events.subject_key is not null
        and consent_events._loaded_at {{ window }}

),

staged_evidence as (

    select * from crm_evidence
    union all
    select * from web_evidence
    union all
    select * from order_evidence
    union all
    select * from message_evidence
    union all
    select * from consent_evidence

)

select
    staged_evidence.*,
    {{ row_checksum(['source_model', 'record_key', 'id_type_a', 'id_key_a', 'id_type_b', 'id_key_b', 'observed_at', '_loaded_at']) }} as evidence_checksum
from staged_evidence
{%- endmacro %}

{#-
    Pre-hook of int_identity_edges. A purge deletes staged rows and rewrites others
    in place, and staging restages them (macros/staging/incremental.sql); the pairs
    folded from them must go too, but an incremental run only reads rows loaded
    after its bound. So, before folding, each source model whose evidence up to its
    bound no longer matches what the pairs recorded (their count of records and the
    sum of the records' evidence_checksum) is unfolded: its pairs are deleted, and
    the run reads all of that source model's rows again (it has no bound left).
    A late batch loaded before the bound is caught the same way. Nothing on a full
    build.
-#}
{% macro identity_unfold_changed_sources() -%}
    {{ return(adapter.dispatch('identity_unfold_changed_sources', 'cdp')()) }}
{%- endmacro %}

{% macro default__identity_unfold_changed_sources() -%}
{%- if execute and is_incremental() -%}
delete from {{ this }}
where source_model in (
    with folded as (

        select
            source_model,
            max(last_loaded_at) as loaded_until,
            sum(n_records) as n_records,
            sum(evidence_checksum) as evidence_checksum
        from {{ this }}
        group by source_model

    ),

    staged as (

        select
            source_model,
            count(*) as n_records,
            sum(evidence_checksum) as evidence_checksum
        from ({{ identity_evidence('folded', newer=false) }}) as evidence
        group by source_model

    )

    select folded.source_model
    from folded
    left join staged
        on folded.source_model = staged.source_model
    where
        folded.n_records is distinct from staged.n_records
        or folded.evidence_checksum is distinct from staged.evidence_checksum
)
{%- endif -%}
{%- endmacro %}
