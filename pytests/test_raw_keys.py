"""No output column holds a raw source id (issue 15, item 4; docs/decisions.md, 50).

A raw source id (an order, message, web event or consent event id, a CRM
customer id, a cookie id, a consent evidence reference, a request id) joins to
a raw-zone row holding the person's email, phone or name: one join re-identifies
whoever the warehouse row is about. Staging therefore writes them as keyed
pseudonyms (one id type each) or drops them. Checked two ways:

- over the manifest: the raw keys are the source columns declared
  ``raw_key: true`` (and the identifier columns that are themselves source keys);
  the only columns that may hold one as it is declare ``raw_key_exception`` and
  are listed here with their reason;
- over the data: no string column of any relation the build wrote holds a raw
  id value from the raw zone's id columns, whole or as a part of a composite key.

Written as the attack: the old ``fct_profile_events.event_id`` (the raw order id)
linked nearly every profiled buyer to their email or phone in one join; the same
join on the product links nobody, and the scan that flags the old column finds
nothing else.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

import duckdb
import pytest

from conftest import Workspace

pytestmark = pytest.mark.dbt

# Raw-zone columns whose values point at one row holding personal data, by table
# (all of the contract's source keys but business codes). customer_id and
# anonymous_id are personal identifiers too (pii: direct); the others are raw keys.
RAW_ID_COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "crm.customers": ("customer_id",),
    "web.events": ("event_id", "anonymous_id", "customer_id"),
    "shop.orders": ("order_id", "customer_id"),
    "shop.order_items": ("order_id",),
    "messaging.message_events": ("message_event_id", "message_id", "customer_id"),
    "privacy.consent_events": ("consent_event_id", "evidence_ref"),
    "privacy.subject_requests": ("request_id",),
}
# Source ids that point at no person's row: kept as they are, not raw keys.
NOT_LINKABLE: Final[dict[str, str]] = {
    "shop.orders.store_id": "a shop's code: the same for every customer of the store",
    "shop.order_items.product_sku": "a catalogue code: the same for every buyer",
    "web.events.product_sku": "a catalogue code: the same for every viewer",
    "messaging.message_events.campaign_id": "a campaign's code: sent to many recipients",
}
# Every source's _batch_id is a load's code, shared by all rows of the load: not linkable.

_REQUEST_ID: Final = (
    "request_id is the privacy desk's handle of a subject request: the officer answers, "
    "tracks, executes and closes the request by it (tracking, access export, purge record); "
    "these are the privacy officer's models, and every other model uses request_key"
)
# (model, column) -> why it may hold a raw key. Keep this short.
EXCEPTIONS: Final[dict[tuple[str, str], str]] = {
    ("stg_privacy__subject_requests_triaged", "request_id"): _REQUEST_ID,
    ("stg_privacy__subject_requests", "request_id"): _REQUEST_ID,
    ("stg_rights__request_closures", "request_id"): _REQUEST_ID,
    ("int_rights__request_persons", "request_id"): _REQUEST_ID,
    ("int_rights__erased_persons", "request_id"): _REQUEST_ID,
    ("int_rights__rectifications", "request_id"): _REQUEST_ID,
    ("int_rights__request_executions", "request_id"): _REQUEST_ID,
    ("int_rights__request_tracking", "request_id"): _REQUEST_ID,
}
EXCEPTED_SOURCES: Final = frozenset({"privacy.subject_requests.request_id"})


def _meta(entry: dict[str, Any]) -> dict[str, Any]:
    meta = dict(entry.get("meta") or {})
    meta.update((entry.get("config") or {}).get("meta") or {})
    return meta


def _manifest(built: Workspace) -> dict[str, Any]:
    for path in sorted(built.root.rglob("manifest.json")):
        return dict(json.loads(path.read_text(encoding="utf-8")))
    raise AssertionError("the build left no manifest.json")


# --------------------------------------------------------------------------- manifest


def test_every_raw_id_column_is_declared_a_raw_key(built: Workspace) -> None:
    """The declarations the gate reads cover every raw id column, and no business code."""
    manifest = _manifest(built)
    declared: dict[str, dict[str, Any]] = {}
    for source in manifest["sources"].values():
        for name, column in source.get("columns", {}).items():
            declared[f"{source['schema']}.{source['name']}.{name}"] = _meta(column)
    for table, columns in RAW_ID_COLUMNS.items():
        for column in columns:
            meta = declared[f"{table}.{column}"]
            assert meta.get("raw_key") is True or meta.get("identifier_type") == column, (
                f"{table}.{column} is a raw id: declare raw_key: true"
            )
            assert meta.get("pii") == "direct", f"{table}.{column}: a raw key is linkable"
    for column, reason in NOT_LINKABLE.items():
        assert declared[column].get("raw_key") is not True, f"{column}: {reason}"
    batch_ids = [name for name in declared if name.endswith("._batch_id")]
    assert batch_ids and not any(declared[name].get("raw_key") for name in batch_ids)


def test_only_the_listed_exceptions_keep_a_raw_key(built: Workspace) -> None:
    """Every column declaring raw_key_exception is listed here, with its reason; no mart."""
    manifest = _manifest(built)
    found: dict[tuple[str, str], str] = {}
    for node in manifest["nodes"].values():
        if node.get("resource_type") != "model":
            continue
        for name, column in node.get("columns", {}).items():
            reason = _meta(column).get("raw_key_exception")
            if reason:
                found[(node["name"], name)] = str(reason)
                path = str(node["original_file_path"])
                assert not path.startswith("models/marts/"), f"{node['name']}.{name}: a mart"
    assert set(found) == set(EXCEPTIONS), "review the exception list (and its reasons) here"
    assert all(EXCEPTIONS[key] and found[key] for key in found)


# --------------------------------------------------------------------------- data


def raw_id_values(raw_db: Path) -> set[str]:
    """Every raw id value, trimmed and lower-cased as staging normalises keys."""
    con = duckdb.connect(str(raw_db), read_only=True)
    try:
        values: set[str] = set()
        for table, columns in RAW_ID_COLUMNS.items():
            for column in columns:
                values |= {
                    str(row[0])
                    for row in con.execute(
                        f"select distinct lower(trim({column})) from {table} "
                        f"where nullif(trim({column}), '') is not null"
                    ).fetchall()
                }
        return values
    finally:
        con.close()


def find_raw_ids(
    con: duckdb.DuckDBPyConnection,
    catalog: str,
    values: set[str],
    excepted: frozenset[tuple[str, str]] = frozenset(),
) -> dict[str, int]:
    """`schema.table.column` -> how many distinct raw ids it holds, whole or as a part of a
    composite key (`order#line`, `origin:id:...`), for every string column of `catalog`."""
    con.execute("create or replace temp table raw_id_values (value varchar)")
    con.executemany("insert into raw_id_values values (?)", [(v,) for v in sorted(values)])
    found: dict[str, int] = {}
    columns = con.execute(
        "select table_schema, table_name, column_name from information_schema.columns "
        "where table_catalog = ? and data_type = 'VARCHAR' order by all",
        [catalog],
    ).fetchall()
    for schema, table, column in columns:
        if (table, column) in excepted:
            continue
        relation = f'"{catalog}"."{schema}"."{table}"'
        hits = con.execute(
            f"""
            with col as (select distinct lower(trim("{column}")) as v from {relation}),
            candidates as (
                select v as candidate from col
                union
                select unnest(regexp_split_to_array(v, '[:#]')) from col
            )
            select count(*) from candidates inner join raw_id_values
                on candidates.candidate = raw_id_values.value
            """
        ).fetchone()
        assert hits is not None
        if hits[0]:
            found[f"{schema}.{table}.{column}"] = int(hits[0])
    return found


def _linked_buyers(con: duckdb.DuckDBPyConnection, events: str, event_column: str) -> int:
    """Profiled people whose order event joins a raw order that names an email or phone."""
    row = con.execute(
        f"""
        select count(distinct events.person_key)
        from {events} as events
        inner join raw.shop.orders as orders
            on events.{event_column} = trim(orders.order_id)
        where events.event_source = 'order'
            and coalesce(nullif(trim(orders.email), ''), nullif(trim(orders.phone), '')) is not null
        """
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_the_old_raw_event_id_links_buyers_and_the_scan_sees_it(
    built: Workspace, tmp_path: Path
) -> None:
    """The weak configuration: fct_profile_events as it was, with the raw source id."""
    con = duckdb.connect(str(tmp_path / "weak.duckdb"))
    try:
        con.execute(f"attach '{built.warehouse_db}' as wh (read_only)")
        con.execute(f"attach '{built.raw_db}' as raw (read_only)")
        order_key = built.record_keys("order_id")
        con.create_function("order_key", order_key, ["VARCHAR"], "VARCHAR")
        # Name each profile event back by its raw order id: what the mart held before.
        con.execute(
            """
            create table weak_profile_events as
            select events.person_key, events.event_source, raw_orders.order_id as event_id
            from wh.marts.fct_profile_events as events
            inner join (
                select distinct trim(order_id) as order_id, order_key(order_id) as order_key
                from raw.shop.orders
            ) as raw_orders
                on events.event_key = raw_orders.order_key
            where events.event_source = 'order'
            """
        )
        buyers = con.execute(
            "select count(distinct person_key) from wh.marts.fct_profile_events "
            "where event_source = 'order'"
        ).fetchone()
        assert buyers is not None and buyers[0] > 100
        linked = _linked_buyers(con, "weak_profile_events", "event_id")
        assert linked >= 0.9 * buyers[0], (linked, buyers[0])  # the attack works
        found = find_raw_ids(con, "weak", raw_id_values(built.raw_db))
        assert found.get("main.weak_profile_events.event_id", 0) > 100, found
        # ...and fails on the product: its event key joins no raw row.
        assert _linked_buyers(con, "wh.marts.fct_profile_events", "event_key") == 0
    finally:
        con.close()


def test_no_relation_holds_a_raw_source_id(built: Workspace) -> None:
    values = raw_id_values(built.raw_db)
    assert len(values) > 1000
    con = duckdb.connect(str(built.warehouse_db), read_only=True)
    try:
        catalog = con.execute("select current_database()").fetchone()
        assert catalog is not None
        found = find_raw_ids(con, str(catalog[0]), values, frozenset(EXCEPTIONS))
        # Business codes are no raw ids (NOT_LINKABLE), and none coincides with one.
        assert found == {}
        # The exceptions do hold request ids (else they would not be needed).
        held = find_raw_ids(con, str(catalog[0]), values)
        assert held.get("staging.stg_privacy__subject_requests.request_id", 0) > 0, held
    finally:
        con.close()
