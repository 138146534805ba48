"""An incremental build equals a full refresh (issue 9).

The session build is copied; a second batch lands on the copy: the generator's
batch 2 plus hand-made rows that touch what batch 1 already staged (a corrected
order line, re-delivered web and message events, late web events, consent
withdrawals, a verified erasure request). A plain ``dbt build`` runs on it, then
a copy of the result is rebuilt with ``--full-refresh`` at the same ``as_of``:
every table of the warehouse and the vault must be equal, row for row, except
the logs that record when something happened (they are compared on what
happened).

A second scenario purges the raw zone (retention, inactivity and the verified
erasure, with the vault) and runs the incremental staging models and the vault
again: what the purge destroyed leaves them too, and what it rewrote in place
(orders' contact fields, a request's subject) is staged again, equal to a full
refresh (docs/decisions.md, 65).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import duckdb
import pytest

from cdp import keys, vault
from cdp.as_of import parse_as_of
from cdp.purge import purge
from conftest import SEED, Workspace, copy_workspace, generate_landing, query, run_ok

pytestmark = pytest.mark.slow  # a long module: xdist starts it first (conftest)

AS_OF: Final = "{as_of: '2026-11-30'}"
MODELS: Final = ("--resource-type", "seed", "--resource-type", "model")
BATCH_2: Final = "batch_0002"
EVENT_MODELS: Final = (
    "stg_web__events_triaged",
    "stg_messaging__message_events_triaged",
    "stg_shop__order_items_triaged",
    "stg_privacy__consent_events_triaged",
    "stg_crm__customers_triaged",
    "stg_shop__orders_triaged",
)
VAULT_MODEL: Final = "vault_identifiers"
NAMES_MODEL: Final = "vault_customer_names"
# Logs of what happened when: a full refresh re-dates them, an incremental run keeps history.
# Compared on their keys instead (see test_logs_record_the_same_events).
LOGS: Final = {
    "audit.audit_bi_disclosure_ledger": ("mart_name", "k_anonymity", "published_rows"),
    "intermediate.int_rights__request_executions": ("request_id", "request_type"),
    "intermediate.int_rights__request_tracking": ("request_id", "request_status", "person_key"),
}


@dataclass
class Increment:
    incremental: Workspace
    full_refresh: Workspace
    corrected_lines: list[tuple[Any, ...]]  # (order_id, line_number) corrected in batch 2


def _hand_made_batch_2(raw_db: Path) -> list[tuple[Any, ...]]:
    """Rows of batch 2 that change groups batch 1 staged; returns the corrected order lines."""
    con = duckdb.connect(str(raw_db))
    try:
        row = con.execute(
            "select max(_loaded_at) from web.events where _batch_id = ?", [BATCH_2]
        ).fetchone()
        assert row is not None and row[0] is not None
        loaded: dt.datetime = row[0]
        batch = f"'{BATCH_2}' as _batch_id, ?::timestamp as _loaded_at"
        first = "where _batch_id = 'batch_0001'"
        # a corrected order line: the batch-1 version becomes superseded
        corrected = con.execute(
            f"select order_id, line_number from shop.order_items {first} "
            "and quantity > 0 order by order_id, line_number limit 3"
        ).fetchall()
        con.execute(
            f"insert into shop.order_items by name select * replace (quantity + 1 as quantity, "
            f"{batch}) from shop.order_items {first} and quantity > 0 "
            "order by order_id, line_number limit 3",
            [loaded],
        )
        # re-deliveries: duplicates of rows batch 1 kept
        for table, key in (
            ("web.events", "event_id"),
            ("messaging.message_events", "message_event_id"),
        ):
            con.execute(
                f"insert into {table} by name select * replace ({batch}) from {table} {first} "
                f"order by {key} limit 5",
                [loaded],
            )
        # late events: new ids, 40 days in the past, received now
        con.execute(
            "insert into web.events by name select * replace ('late-' || event_id as event_id, "
            "event_at - interval 40 day as event_at, ?::timestamp as received_at, "
            f"{batch}) from web.events {first} and event_at is not null order by event_id limit 5",
            [loaded, loaded],
        )
        # consent withdrawals of purposes granted in batch 1
        con.execute(
            "insert into privacy.consent_events by name select * replace ("
            "'withdrawal-' || consent_event_id as consent_event_id, 'withdraw' as action, "
            f"?::timestamp - interval 1 hour as captured_at, {batch}) from privacy.consent_events "
            f"{first} and lower(trim(action)) = 'grant' order by consent_event_id limit 5",
            [loaded, loaded],
        )
        # a verified erasure of a batch-1 customer
        customer = con.execute(
            f"select customer_id from crm.customers {first} and customer_id is not null "
            "order by customer_id limit 1"
        ).fetchone()
        assert customer is not None
        con.execute(
            "insert into privacy.subject_requests (request_id, subject_id_type, subject_id, "
            "request_type, jurisdiction, received_at, details, is_verified, _loaded_at, _batch_id) "
            "values ('DSR-INCREMENT-1', 'customer_id', ?, 'erasure', 'RU', "
            "?::timestamp - interval 1 day, null, true, ?, ?)",
            [customer[0], loaded, loaded, BATCH_2],
        )
        return [tuple(r) for r in corrected]
    finally:
        con.close()


@pytest.fixture(scope="module")
def increment(built: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Increment]:
    workspace = copy_workspace(built, tmp_path_factory.mktemp("increment"))
    generate_landing(workspace.raw_db, workspace.truth_db, customers=6, seed=SEED, batch=2)
    corrected = _hand_made_batch_2(workspace.raw_db)
    run_ok(workspace.dbt("build", *MODELS, "--vars", AS_OF))
    full = copy_workspace(workspace, tmp_path_factory.mktemp("increment_full_refresh"))
    run_ok(full.dbt("build", "--full-refresh", *MODELS, "--vars", AS_OF))
    yield Increment(incremental=workspace, full_refresh=full, corrected_lines=corrected)


def _tables(db: Path) -> list[str]:
    return [
        f"{schema}.{table}"
        for schema, table in query(
            db,
            "select table_schema, table_name from information_schema.tables "
            "where table_catalog = current_database() and table_type = 'BASE TABLE' "
            "order by all",
        )
    ]


def _differences(first: Path, second: Path, skip: frozenset[str] = frozenset()) -> list[str]:
    """Tables whose rows differ (as multisets), with how; table sets compared too."""
    tables_1, tables_2 = set(_tables(first)), set(_tables(second))
    found = [f"only in one: {sorted(tables_1 ^ tables_2)}"] if tables_1 != tables_2 else []
    for table in sorted((tables_1 & tables_2) - skip):
        rows_1 = sorted(map(repr, query(first, f"select * from {table}")))
        rows_2 = sorted(map(repr, query(second, f"select * from {table}")))
        if rows_1 != rows_2:
            only_1, only_2 = set(rows_1) - set(rows_2), set(rows_2) - set(rows_1)
            found.append(
                f"{table}: {len(rows_1)} vs {len(rows_2)} rows, {len(only_1)} / {len(only_2)} only in one"
            )
    return found


def test_event_models_ran_incrementally(increment: Increment) -> None:
    """The plain build really took the incremental path (else the comparison proves nothing)."""
    run_dir = increment.incremental.root / "target" / "privacy" / "compiled" / "cdp" / "models"
    for model in EVENT_MODELS:
        [compiled] = run_dir.rglob(f"{model}.sql")
        assert "triage_changed_batches" in compiled.read_text(), model
    vault_dir = increment.incremental.root / "target" / "vault" / "compiled" / "cdp" / "models"
    for model in (VAULT_MODEL, NAMES_MODEL):
        [compiled] = vault_dir.rglob(f"{model}.sql")
        assert "vault_new_batches" in compiled.read_text(), model


def test_the_vault_only_grew_by_the_new_batch(increment: Increment) -> None:
    """Batch 2 only added rows: the vault kept every entry and added those of batch 2 alone,
    and recorded every landing batch it read."""
    state = query(
        increment.incremental.vault_db,
        f"select source_table, _batch_id from main.{VAULT_MODEL}__raw_batches",
    )
    assert {b for _, b in state} == {"batch_0001", BATCH_2}
    assert {t for t, _ in state} >= {"crm.customers", "shop.orders", "web.events"}
    names = query(
        increment.incremental.vault_db,
        f"select source_table, _batch_id from main.{NAMES_MODEL}__raw_batches",
    )
    assert sorted(names) == [("crm.customers", "batch_0001"), ("crm.customers", BATCH_2)]


def test_incremental_build_equals_full_refresh(increment: Increment) -> None:
    warehouse_1 = increment.incremental.warehouse_db
    warehouse_2 = increment.full_refresh.warehouse_db
    tables = _tables(warehouse_1)
    # the comparison covers every published, profile, audience and staging relation
    for expected in (
        "bi.bi_sales_by_region_month",
        "marts.dim_customer_profile",
        "marts.fct_profile_events",
        "marts.rpt_email_audience",
        *(f"staging.{m}" for m in EVENT_MODELS),
    ):
        assert expected in tables
    assert _differences(warehouse_1, warehouse_2, skip=frozenset(LOGS)) == []
    names = "main.vault_customer_names"
    vault_1, vault_2 = increment.incremental.vault_db, increment.full_refresh.vault_db
    assert _differences(vault_1, vault_2, skip=frozenset({names})) == []
    # Names are sealed with a random nonce per row (decision 37): compared opened.
    assert _opened_names(vault_1, increment.incremental.key) == _opened_names(
        vault_2, increment.full_refresh.key
    )


def _opened_names(vault_db: Path, key: str) -> list[tuple[str, str, str, str]]:
    cipher = vault.VaultCipher.from_master(keys.load_master_key({keys.ENV_KEY: key}))
    table = "vault_customer_names"
    rows = query(
        vault_db, f"select customer_key, name_part, sealed_value, key_version from main.{table}"
    )
    opened = [
        (
            str(owner),
            str(part),
            cipher.unseal(table, str(owner), str(part), bytes(blob), deterministic=False),
            str(version),
        )
        for owner, part, blob, version in rows
    ]
    assert len(opened) > 100
    return sorted(opened)


def test_logs_record_the_same_events(increment: Increment) -> None:
    for table, columns in LOGS.items():
        sql = f"select distinct {', '.join(columns)} from {table}"
        if table == "audit.audit_bi_disclosure_ledger":  # the latest release of each
            sql += " where released_at = (select max(released_at) from " + table + ")"
        got = set(query(increment.incremental.warehouse_db, sql))
        want = set(query(increment.full_refresh.warehouse_db, sql))
        assert want and got == want, table


def test_a_corrected_line_supersedes_the_staged_one(increment: Increment) -> None:
    """Batch 2 changed rows batch 1 staged: the incremental run re-triaged them."""
    statuses = query(
        increment.incremental.warehouse_db,
        "select order_key, line_number, _batch_id, row_status "
        "from staging.stg_shop__order_items_triaged",
    )
    by_line = {(o, n, b): s for o, n, b, s in statuses}
    for order_id, line_number in increment.corrected_lines:
        # staged as the order id's keyed pseudonym (decision 50)
        key = (increment.incremental.record_key("order_id", str(order_id)), line_number)
        assert by_line[(*key, "batch_0001")] == "superseded"
        assert by_line[(*key, BATCH_2)] == "kept"
    raw = query(increment.incremental.raw_db, "select count(*) from shop.order_items")[0][0]
    assert len(statuses) == raw


def test_purged_rows_leave_the_incremental_models(
    increment: Increment, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """After a purge (retention, inactivity and the verified erasure, vault included), a plain
    run of the incremental staging models and the vault equals their full refresh, row for row:
    rows the purge deleted are gone, rows it rewrote in place are staged again as rewritten
    (a per-batch row count cannot see those: the batch's content checksum does)."""
    workspace = copy_workspace(increment.full_refresh, tmp_path_factory.mktemp("increment_purge"))
    before = {
        m: query(workspace.warehouse_db, f"select count(*) from staging.{m}")[0][0]
        for m in EVENT_MODELS
    }
    contactless_before = _contactless_orders(workspace)
    result = purge(
        raw_db=workspace.raw_db,
        warehouse_db=workspace.warehouse_db,
        vault_db=workspace.vault_db,
        as_of=parse_as_of("2027-06-01"),
        operator="pytest",
        environ={"CDP_MASTER_KEY": workspace.key},
    )
    done = {(table, reason, method) for table, _, reason, method in result.totals()}
    # the scenario holds each kind of change: deletions, in-place rewrites, an erasure
    assert ("shop.orders", "erasure_request", "null_fields") in done
    assert ("privacy.subject_requests", "erasure_request", "replace_fields") in done
    assert ("crm.customers", "erasure_request", "delete_rows") in done
    assert ("vault.vault_identifiers", "erasure_request", "delete_rows") in done
    assert ("vault.vault_customer_names", "erasure_request", "delete_rows") in done
    rebuilt = copy_workspace(workspace, tmp_path_factory.mktemp("increment_purge_full"))
    run_ok(workspace.dbt("run", "--vars", AS_OF))
    run_ok(rebuilt.dbt("run", "--full-refresh", "--vars", AS_OF))
    after = {
        m: query(workspace.warehouse_db, f"select count(*) from staging.{m}")[0][0]
        for m in EVENT_MODELS
    }
    # the purge destroyed some of the event rows (older than 13 months), and the
    # incremental models lost them
    assert 0 < after["stg_web__events_triaged"] < before["stg_web__events_triaged"]
    assert after["stg_crm__customers_triaged"] < before["stg_crm__customers_triaged"]
    for model in EVENT_MODELS:
        table = f"staging.{model}"
        assert (
            _differences(
                workspace.warehouse_db,
                rebuilt.warehouse_db,
                skip=frozenset(t for t in _tables(workspace.warehouse_db) if t != table),
            )
            == []
        ), model
    # and so is everything downstream: the identity graph folds no evidence the purge destroyed
    assert _differences(workspace.warehouse_db, rebuilt.warehouse_db, skip=frozenset(LOGS)) == []
    names = f"main.{NAMES_MODEL}"
    assert _differences(workspace.vault_db, rebuilt.vault_db, skip=frozenset({names})) == []
    assert _opened_names(workspace.vault_db, workspace.key) == _opened_names(
        rebuilt.vault_db, rebuilt.key
    )
    # the erased customer's orders, rewritten in place, are staged without their contacts
    assert _contactless_orders(workspace) > contactless_before


def _contactless_orders(workspace: Workspace) -> int:
    return int(
        query(
            workspace.warehouse_db,
            "select count(*) from staging.stg_shop__orders_triaged where customer_key is null "
            "and email_key is null and phone_key is null and delivery_region is null",
        )[0][0]
    )


def test_a_group_the_purge_emptied_in_a_batch_is_found_by_its_pseudonym(
    increment: Increment, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Batch 2's corrected lines superseded batch 1's; destroy them in batch 2 only. The
    changed batch no longer names those lines by raw key: the run finds them by the
    staged pseudonym in batch 1, triages batch 1's rows again, and they are kept."""
    workspace = copy_workspace(increment.incremental, tmp_path_factory.mktemp("increment_orphan"))
    con = duckdb.connect(str(workspace.raw_db))
    try:
        for order_id, line_number in increment.corrected_lines:
            con.execute(
                "delete from shop.order_items where order_id = ? and line_number = ? "
                "and _batch_id = ?",
                [order_id, line_number, BATCH_2],
            )
    finally:
        con.close()
    rebuilt = copy_workspace(workspace, tmp_path_factory.mktemp("increment_orphan_full"))
    select = ("--select", "stg_shop__order_items_triaged", "--vars", AS_OF)
    run_ok(workspace.dbt("run", *select))
    run_ok(rebuilt.dbt("run", "--full-refresh", *select))
    statuses = dict(
        ((str(key), int(line), str(batch)), str(status))
        for key, line, batch, status in query(
            workspace.warehouse_db,
            "select order_key, line_number, _batch_id, row_status "
            "from staging.stg_shop__order_items_triaged",
        )
    )
    for order_id, line_number in increment.corrected_lines:
        key = (workspace.record_key("order_id", str(order_id)), int(line_number))
        assert statuses[(*key, "batch_0001")] == "kept"
        assert (*key, BATCH_2) not in statuses
    table = "staging.stg_shop__order_items_triaged"
    others = frozenset(t for t in _tables(workspace.warehouse_db) if t != table)
    assert _differences(workspace.warehouse_db, rebuilt.warehouse_db, skip=others) == []
