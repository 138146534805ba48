{{ enforced_contract() }}

{#-
    The pseudonymised, consented, minimised unified customer profile: one row
    per person who may be profiled as of `as_of` (int_consent__profiled_persons),
    keyed by person_key. Only what the personalisation purpose needs: the
    consent-based purposes the person is permitted for, a purchase summary with
    RFM, communication and site activity (all from fct_profile_events:
    consented at the event time, within retention), age band and region. Never
    a birth date, city, name or contact.

    Consent is data: permitted_purposes lists every consent purpose of the
    catalogue the person is permitted for, a new purpose included with no edit
    here. The flag columns is_<purpose>_permitted are the ones the contract
    (_profile__models.yml) publishes, each read from that list: the contract is
    the one place they are written (docs/decisions.md, 54), and
    assert_profile_flags_name_consent_purposes fails on a flag whose purpose
    the catalogue does not hold.
-#}
{%- set flag_purposes = [] -%}
{%- for column_name in model.columns -%}
    {%- set flag = modules.re.fullmatch('is_([a-z][a-z0-9_]*)_permitted', column_name) -%}
    {%- if flag -%}
        {%- do flag_purposes.append(flag.group(1)) -%}
    {%- endif -%}
{%- endfor %}
with profiled_persons as (

    select * from {{ ref('int_consent__profiled_persons') }}

),

profile_events as {{ inline_cte() }} (

    select * from {{ ref('fct_profile_events') }}

),

order_items as (

    select * from {{ ref('stg_shop__order_items') }}

),

customers as (

    select * from {{ ref('stg_crm__customers') }}

),

subject_persons as (

    select * from {{ ref('int_consent__subject_persons') }}

),

person_purposes as (

    select * from {{ ref('int_consent__person_purposes') }}

),

person_customer as (

    select
        subject_persons.person_key,
        -- ties on updated_at are broken by the value itself, not by customer_key: the result is
        -- deterministic, and the published region does not derive from an identifier (privacy gate)
        {{ value_at_max('customers.birth_year', ['customers.updated_at', 'customers.birth_year']) }} as birth_year,
        {{ value_at_max('customers.region', ['customers.updated_at', 'customers.region']) }} as region
    from subject_persons
    inner join customers
        on subject_persons.subject_key = customers.customer_key
    where subject_persons.is_unambiguous
    group by subject_persons.person_key

),

consent_flags as (

    select
        person_key,
        {{ sorted_list('purpose_code', where='is_permitted') }} as permitted_purposes
    from person_purposes
    group by person_key

),

orders as (

    select * from profile_events
    where event_source = 'order' and event_type not in ('cancelled', 'returned')

),

order_categories as (

    select
        orders.person_key,
        order_items.category,
        sum(order_items.line_amount) as category_amount,
        count(*) as category_lines
    from orders
    inner join order_items
        on orders.event_key = order_items.order_key
    where order_items.category is not null
    group by orders.person_key, order_items.category

),

category_summary as (

    select
        person_key,
        count(*) as category_count,
        {{ value_at_first('category', ['category_lines desc', 'category_amount desc', 'category asc']) }} as top_category,
        {{ sorted_list('category') }} as categories
    from order_categories
    group by person_key

),

purchase_summary as (

    select
        person_key,
        count(*) as order_count,
        sum(order_amount) filter (where order_currency = 'RUB') as revenue_rub,
        min(event_at) as first_order_at,
        max(event_at) as last_order_at,
        {{ day_boundaries_between('max(event_at)', as_of()) }} as recency_days
    from orders
    group by person_key

),

rfm as (

    select
        person_key,
        -- person_key breaks ties: without it, tied people land in buckets at random and two
        -- builds of the same data differ (the idempotency test caught it on dirty data)
        ntile(5) over (order by recency_days desc, person_key asc) as rfm_recency_score,
        ntile(5) over (order by order_count, person_key) as rfm_frequency_score,
        ntile(5) over (order by coalesce(revenue_rub, 0), person_key) as rfm_monetary_score
    from purchase_summary

),

message_summary as (

    select
        person_key,
        count(*) filter (where event_type = 'sent') as messages_sent,
        count(*) filter (where event_type = 'opened') as messages_opened,
        count(*) filter (where event_type = 'clicked') as messages_clicked
    from profile_events
    where event_source = 'message'
    group by person_key

),

channel_engagement as (

    select
        person_key,
        channel,
        count(*) filter (where event_type in ('opened', 'clicked')) as engagements,
        count(*) as channel_events
    from profile_events
    where event_source = 'message'
    group by person_key, channel

),

preferred_channel as (

    select
        person_key,
        channel as preferred_channel
    from channel_engagement
    qualify
        row_number() over (
            partition by person_key
            order by engagements desc, channel_events desc, channel asc
        ) = 1

),

site_summary as (

    select
        person_key,
        count(*) as site_event_count,
        count(*) filter (where event_type = 'product_view') as product_view_count,
        count(*) filter (where event_type = 'add_to_cart') as add_to_cart_count,
        max(event_at) as last_site_visit_at
    from profile_events
    where event_source = 'site'
    group by person_key

),

device_usage as (

    select
        person_key,
        device_class,
        count(*) as device_events
    from profile_events
    where event_source = 'site' and device_class is not null
    group by person_key, device_class

),

preferred_device as (

    select
        person_key,
        device_class as preferred_device_class
    from device_usage
    qualify
        row_number() over (
            partition by person_key
            order by device_events desc, device_class asc
        ) = 1

),

final as (

    select
        cast(profiled_persons.person_key as {{ text_type() }}) as person_key,
        cast(case
            when person_customer.birth_year is null then null
            when year({{ as_of() }}) - person_customer.birth_year < 18 then 'under_18'
            when year({{ as_of() }}) - person_customer.birth_year < 25 then '18-24'
            when year({{ as_of() }}) - person_customer.birth_year < 35 then '25-34'
            when year({{ as_of() }}) - person_customer.birth_year < 45 then '35-44'
            when year({{ as_of() }}) - person_customer.birth_year < 55 then '45-54'
            when year({{ as_of() }}) - person_customer.birth_year < 65 then '55-64'
            else '65_plus'
        end as {{ text_type() }}) as age_band,
        cast(person_customer.region as {{ text_type() }}) as region,
        cast(profiled_persons.consent_valid_from as timestamp) as personalisation_consent_since,
        cast(profiled_persons.consent_channel as {{ text_type() }}) as personalisation_consent_channel,
        cast(profiled_persons.policy_version as {{ text_type() }}) as personalisation_policy_version,
        {%- for purpose_code in flag_purposes %}
            cast({{ list_has('coalesce(consent_flags.permitted_purposes, ' ~ empty_list() ~ ')', "'" ~ purpose_code ~ "'") }} as boolean)
                as is_{{ purpose_code }}_permitted,
        {%- endfor %}
        cast(coalesce(consent_flags.permitted_purposes, {{ empty_list() }}) as {{ text_list_type() }}) as permitted_purposes,
        cast(coalesce(purchase_summary.order_count, 0) as bigint) as order_count,
        cast(coalesce(purchase_summary.revenue_rub, 0) as decimal(18, 2)) as revenue_rub,
        cast(coalesce(category_summary.category_count, 0) as bigint) as category_count,
        cast(category_summary.top_category as {{ text_type() }}) as top_category,
        cast(coalesce(category_summary.categories, {{ empty_list() }}) as {{ text_list_type() }}) as categories,
        cast(purchase_summary.first_order_at as timestamp) as first_order_at,
        cast(purchase_summary.last_order_at as timestamp) as last_order_at,
        cast(purchase_summary.recency_days as bigint) as recency_days,
        cast(rfm.rfm_recency_score as integer) as rfm_recency_score,
        cast(rfm.rfm_frequency_score as integer) as rfm_frequency_score,
        cast(rfm.rfm_monetary_score as integer) as rfm_monetary_score,
        cast(case
            when rfm.person_key is null then 'no_orders'
            when rfm.rfm_recency_score >= 4 and rfm.rfm_frequency_score >= 4 then 'champion'
            when rfm.rfm_frequency_score >= 4 then 'loyal'
            when rfm.rfm_recency_score >= 4 and rfm.rfm_frequency_score <= 2 then 'new'
            when rfm.rfm_recency_score <= 2 and rfm.rfm_frequency_score >= 3 then 'at_risk'
            when rfm.rfm_recency_score <= 2 then 'hibernating'
            else 'regular'
        end as {{ text_type() }}) as rfm_segment,
        cast(coalesce(message_summary.messages_sent, 0) as bigint) as messages_sent,
        cast(coalesce(message_summary.messages_opened, 0) as bigint) as messages_opened,
        cast(coalesce(message_summary.messages_clicked, 0) as bigint) as messages_clicked,
        cast(preferred_channel.preferred_channel as {{ text_type() }}) as preferred_channel,
        cast(coalesce(site_summary.site_event_count, 0) as bigint) as site_event_count,
        cast(coalesce(site_summary.product_view_count, 0) as bigint) as product_view_count,
        cast(coalesce(site_summary.add_to_cart_count, 0) as bigint) as add_to_cart_count,
        cast(site_summary.last_site_visit_at as timestamp) as last_site_visit_at,
        cast(preferred_device.preferred_device_class as {{ text_type() }}) as preferred_device_class,
        cast(profiled_persons.last_activity_at as timestamp) as last_activity_at,
        cast({{ as_of() }} as timestamp) as as_of
    from profiled_persons
    left join person_customer
        on profiled_persons.person_key = person_customer.person_key
    left join consent_flags
        on profiled_persons.person_key = consent_flags.person_key
    left join purchase_summary
        on profiled_persons.person_key = purchase_summary.person_key
    left join category_summary
        on profiled_persons.person_key = category_summary.person_key
    left join rfm
        on profiled_persons.person_key = rfm.person_key
    left join message_summary
        on profiled_persons.person_key = message_summary.person_key
    left join preferred_channel
        on profiled_persons.person_key = preferred_channel.person_key
    left join site_summary
        on profiled_persons.person_key = site_summary.person_key
    left join preferred_device
        on profiled_persons.person_key = preferred_device.person_key

)

select * from final
