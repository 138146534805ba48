"""The inactivity rule: a customer inactive past the limit is depersonalised.

CRM rows deleted, messages to them deleted (opt-out proof kept), contact and delivery
fields of their orders nulled.
"""

from __future__ import annotations

from cdp import sources
from cdp.purge.core import OPT_OUT_EVENT_TYPES, Purger, Rule, quote_list


def plan_inactivity(purger: Purger) -> None:
    """Customers whose last activity is older than the inactivity limit are depersonalised.

    Activity is evidence kept at least as long as the limit (an order, a consent grant, the
    CRM record created or updated), as in int_consent__person_activity: a verdict that
    changed when shorter-lived data is purged would make every run destroy more.
    """
    cutoff = purger.cutoff("customer_master_data")
    # Last own activity per raw customer id: in the raw zone directly (covers what the
    # warehouse has not seen yet) and per person in the warehouse (covers linked identifiers).
    purger.sql(
        """
        create or replace temp table purge_customer_activity as
        with raw_activity as (
            select nullif(trim(customer_id), '') as customer_id, created_at as activity_at
            from crm.customers
            union all
            select nullif(trim(customer_id), ''), updated_at from crm.customers
            union all
            select nullif(trim(customer_id), ''), ordered_at from shop.orders
            union all
            select nullif(trim(subject_id), ''), least(captured_at, _loaded_at) from privacy.consent_events
            where lower(trim(subject_id_type)) = 'customer_id' and lower(trim(action)) = 'grant'
        ),
        customers as (
            select distinct customers.customer_id, keys.subject_key
            from crm.customers as customers
            inner join purge_keys as keys
                on keys.id_type = 'customer_id' and customers.customer_id = keys.raw_value
            where keys.subject_key is not null
        ),
        person_activity as (
            select persons.subject_key, max(activity.last_activity_at) as last_activity_at
            from purge_subject_persons as persons
            inner join purge_person_activity as activity
                on persons.person_key = activity.person_key
            group by persons.subject_key
        )
        select
            customers.customer_id,
            customers.subject_key,
            greatest(
                (select max(activity_at) from raw_activity
                 where raw_activity.customer_id = nullif(trim(customers.customer_id), '')),
                person_activity.last_activity_at
            ) as last_activity_at
        from customers
        left join person_activity
            on customers.subject_key = person_activity.subject_key
        """
    )
    purger.sql(
        """
        create or replace temp table purge_inactive_customers as
        select customer_id, subject_key, last_activity_at
        from purge_customer_activity
        where last_activity_at < ?
        """,
        [cutoff],
    )
    purger.add_rule(
        Rule("crm.customers", "customer_master_data", "inactivity_limit", "delete_rows"),
        """
        select customers.rowid, customers._batch_id, inactive.last_activity_at, 'customer_id', inactive.subject_key
        from crm.customers as customers
        inner join purge_inactive_customers as inactive
            on customers.customer_id = inactive.customer_id
        """,
    )
    purger.add_rule(
        Rule(
            "messaging.message_events",
            "communication_activity",
            "inactivity_limit",
            "delete_rows",
        ),
        f"""
        select messages.rowid, messages._batch_id, messages.event_at, 'customer_id', inactive.subject_key
        from messaging.message_events as messages
        inner join purge_inactive_customers as inactive
            on messages.customer_id = inactive.customer_id
        where coalesce(lower(trim(messages.event_type)), '') not in ({quote_list(OPT_OUT_EVENT_TYPES)})
        """,
    )
    purger.add_rule(
        Rule(
            "shop.orders",
            "purchase_history",
            "inactivity_limit",
            "null_fields",
            sources.table("shop.orders").erasure_fields,
        ),
        """
        select orders.rowid, orders._batch_id, orders.ordered_at, 'customer_id', inactive.subject_key
        from shop.orders as orders
        inner join purge_inactive_customers as inactive
            on orders.customer_id = inactive.customer_id
        """,
    )
