{#-
    How the population behind the marts changed, without keeping anyone:
    every person any mart counts gets a fingerprint of everything that puts
    them in cells (age band, region, RFM segment, their counted orders and
    message events, their consent intervals and whether they are excluded),
    and this table holds only how many fingerprints fall in each of 256
    buckets. `cdp publish` compares it with the previous release's
    (kept in its state folder): a person added or removed moves one bucket
    count by one, a person whose cells changed moves two, so half the L1
    distance is a lower bound on the people who changed, and a release waits
    until it reaches the release threshold (decision 45). No person key, no
    fingerprint leaves this model: only (bucket, people).
-#}
{#- The texts the consent state and the fingerprint are made of (dispatched around: macros/cross_db/bi.sql). -#}
{%- set consent_state -%}
            concat_ws(
                ':', person_ledger.purpose_code, person_ledger.grant_channel,
                cast(person_ledger.valid_from as {{ text_type() }}), cast(person_ledger.valid_to as {{ text_type() }})
            )
{%- endset -%}
{%- set consent_order -%}
person_ledger.purpose_code, person_ledger.valid_from
{% endset -%}
{%- set fingerprint_text -%}
concat_ws(
            '#',
            'cdp-population-sketch:v1',
            population.person_key,
            coalesce(person_cells.cell_state, '-'),
            coalesce(person_events.event_state, '-'),
            coalesce(person_consents.consent_state, '-'),
            cast(population.person_key in (select person_restrictions.person_key from person_restrictions) as {{ text_type() }})
        )
{%- endset -%}
with analytics_persons as (

    select * from {{ ref('int_bi__analytics_persons') }}

),

analytics_events as (

    select * from {{ ref('int_bi__analytics_events') }}

),

customer_profile as (

    select * from {{ ref('dim_customer_profile') }}

),

person_ledger as (

    select * from {{ ref('int_consent__person_ledger') }}

),

person_restrictions as (

    select * from {{ ref('int_consent__person_restrictions') }}

),

purposes as (

    select * from {{ ref('purposes') }}

),

person_cells as (

    select
        analytics_persons.person_key,
        concat_ws('|', analytics_persons.age_band, analytics_persons.region, customer_profile.rfm_segment)
            as cell_state
    from analytics_persons
    left join customer_profile
        on analytics_persons.person_key = customer_profile.person_key

),

person_events as (

    select
        person_key,
        {{ ordered_text_agg("analytics_event_id || ':' || event_type", "','", 'analytics_event_id, event_type') }}
            as event_state
    from analytics_events
    group by person_key

),

person_consents as (

    select
        person_ledger.person_key,
        {{ ordered_text_agg("\n            " ~ consent_state, "\n            ','", consent_order) }} as consent_state
    from person_ledger
    inner join purposes
        on person_ledger.purpose_code = purposes.purpose_code
    where purposes.is_consent_required
    group by person_ledger.person_key

),

population as (

    select person_key from person_cells
    union
    select person_key from person_consents

),

fingerprints as (

    select
        {{ sha256_hex(fingerprint_text) }} as fingerprint
    from population
    left join person_cells
        on population.person_key = person_cells.person_key
    left join person_events
        on population.person_key = person_events.person_key
    left join person_consents
        on population.person_key = person_consents.person_key

),

buckets as (

    select {{ integer_range_column() }} as bucket
    from range(256)

),

final as (

    select
        cast(buckets.bucket as integer) as bucket,
        cast(count(fingerprints.fingerprint) as bigint) as people
    from buckets
    left join fingerprints
        on buckets.bucket = {{ hex_to_integer('left(fingerprints.fingerprint, 2)') }}
    group by buckets.bucket

)

select * from final
