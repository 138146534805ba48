"""Retention by time: each landing table's rule as its sources' metadata names it.

``record_time`` (a row expires from its own time) and the named rules of tables whose
expiry depends on more than one row: ``messages`` (opt-outs kept as consent records),
``latest_version`` (a record from its latest version) and ``parent`` (lines go with their
order). ``consent_log`` and ``inactivity`` judge a person across tables: :mod:`.consent`,
:mod:`.inactivity`.
"""

from __future__ import annotations

import datetime as dt

from cdp import sources
from cdp.purge.core import (
    NAMED_RULE_TABLES,
    OPT_OUT_EVENT_TYPES,
    PurgeError,
    Purger,
    Rule,
    quote_list,
)


def plan_time_based(purger: Purger, as_of: dt.datetime) -> None:
    """Each landing table's retention rule, as its sources' metadata names it (cdp.sources):
    ``record_time`` for any table the metadata dates; the named rules of the tables whose
    expiry depends on more than one row (consent_log and inactivity are planned apart)."""
    for table in sources.landing_tables():
        rule = table.retention_rule
        if rule == "record_time":
            plan_record_time(purger, table)
        elif rule == "latest_version":
            plan_latest_version(purger, table)
        elif rule == "parent":
            plan_parent(purger, table)
        elif rule == "messages":
            plan_messages(purger, table)
        elif rule in NAMED_RULE_TABLES:
            if table.qualified != NAMED_RULE_TABLES[rule]:
                raise PurgeError(
                    f"{table.qualified}: the retention rule {rule!r} is written for "
                    f"{NAMED_RULE_TABLES[rule]} only; give the table a rule of its own"
                )
        else:
            raise PurgeError(
                f"{table.qualified}: the purge has no retention rule {rule!r} "
                f"(cdp.sources.RETENTION_RULES: {', '.join(sources.RETENTION_RULES)})"
            )


def plan_record_time(purger: Purger, table: sources.Table) -> None:
    """A row expires ``retention_days`` after its retention time, unless it is kept."""
    keep = f"not ({table.retention_keep}) and " if table.retention_keep else ""
    purger.add_rule(
        Rule(table.qualified, table.data_category, "retention_expired", "delete_rows"),
        f"""
        select rowid, _batch_id, {table.retention_time}, null, null
        from {table.qualified}
        where {keep}{table.retention_time} < ?
        """,
        [purger.cutoff(table.data_category)],
    )


def plan_messages(purger: Purger, table: sources.Table) -> None:
    """Messages expire from their time; an unsubscribe or complaint is a withdrawal: proof,
    kept like consent records from its own time."""
    opt_outs = quote_list(OPT_OUT_EVENT_TYPES)
    purger.add_rule(
        Rule(table.qualified, table.data_category, "retention_expired", "delete_rows"),
        f"""
        select rowid, _batch_id, {table.record_time}, null, null
        from {table.qualified}
        where
            coalesce(lower(trim(event_type)), '') not in ({opt_outs})
            and {table.record_time} < ?
        """,
        [purger.cutoff(table.data_category)],
    )
    purger.add_rule(
        Rule(table.qualified, "consent_records", "consent_episode_expired", "delete_rows"),
        f"""
        select rowid, _batch_id, {table.record_time}, null, null
        from {table.qualified}
        where
            lower(trim(event_type)) in ({opt_outs})
            and {table.record_time} < ?
        """,
        [purger.cutoff("consent_records")],
    )


def _version_times(purger: Purger, table: sources.Table) -> str:
    """Temp table of each record's latest time (key -> time), over all its versions."""
    name = f"purge_times_{table.schema}_{table.name}"
    key = _record_key(table)
    purger.sql(
        f"""
        create or replace temp table {name} as
        select nullif(trim({key}), '') as record_key, max({table.retention_time}) as record_at
        from {table.qualified}
        group by all
        """
    )
    return name


def _record_key(table: sources.Table) -> str:
    keys_ = [c.name for c in table.columns if c.raw_key]
    if not keys_:
        raise PurgeError(f"{table.qualified}: the latest_version rule needs a raw_key column")
    return keys_[0]


def plan_latest_version(purger: Purger, table: sources.Table) -> None:
    """A record with several versions expires from its latest time (an order from when it
    was placed or last changed), all its versions at once."""
    times = _version_times(purger, table)
    key = _record_key(table)
    purger.add_rule(
        Rule(table.qualified, table.data_category, "retention_expired", "delete_rows"),
        f"""
        select rows.rowid, rows._batch_id, times.record_at, null, null
        from {table.qualified} as rows
        inner join {times} as times
            on nullif(trim(rows.{key}), '') is not distinct from times.record_key
        where times.record_at < ?
        """,
        [purger.cutoff(table.data_category)],
    )


def plan_parent(purger: Purger, table: sources.Table) -> None:
    """Rows that belong to a row of another table (order lines) go with it; a row whose
    parent is gone expires from its own load time."""
    assert table.parent is not None  # sources.problems() requires it for this rule
    parent_name, key = table.parent
    times = _version_times(purger, sources.table(parent_name))
    purger.add_rule(
        Rule(table.qualified, table.data_category, "retention_expired", "delete_rows"),
        f"""
        select rows.rowid, rows._batch_id, coalesce(times.record_at, rows._loaded_at), null, null
        from {table.qualified} as rows
        left join {times} as times
            on nullif(trim(rows.{key}), '') = times.record_key
        where coalesce(times.record_at, rows._loaded_at) < ?
        """,
        [purger.cutoff(table.data_category)],
    )
