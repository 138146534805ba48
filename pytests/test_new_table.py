"""A new landing table is safe by construction (decision 57).

In a copy of the project, a new raw table ``loyalty.point_events`` with one personal column
(a member's e-mail) is added the short way: its landing contract and metadata in a sources
yml, and one staging model of one line. With no other edit, a real build and the privacy
officer's tools must treat it as they treat the tables they were written for:

- its e-mails are pseudonymised in staging (the keyed pseudonym, no plaintext), and one
  seen nowhere else is sealed into the vault;
- every raw row is accounted for (kept, duplicate, quarantined), and the quarantined row is
  in the quarantine with its reason;
- the person's rows are in their access export;
- the retention purge destroys its expired row, and an erasure the person's rows, each with
  a destruction record.

Each check fails on the product before this design (the table was invisible to the vault,
the audit unions, the purge and the export: they listed the tables by hand).
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from cdp import access, keys, normalise, pseudonym
from cdp.purge import PurgeResult, purge
from conftest import ROOT, Workspace, copy_workspace, environment, query, run_ok

pytestmark = pytest.mark.dbt

LOADED_AT = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
BATCH = "new-table-test"
NOVA = ("CUST-NEWTABLE-0001", "Nova.Member@Example.org")  # erased
ORLA = ("CUST-NEWTABLE-0002", "orla.member@example.org")  # asks for her data
SOLO = "Solo.Member@Example.net"  # only in the new table
ERASURE_REQUEST = "DSR-NEWTABLE-ERASE-1"

SOURCES_YML = """\
version: 2

sources:
  - name: loyalty
    description: "Loyalty points ledger (a table added after the product shipped)."
    database: raw
    schema: loyalty
    config:
      loaded_at_field: _loaded_at
      meta:
        owner: loyalty
        zone: raw
        landing: true
    tables:
      - name: point_events
        description: "One row per points award."
        config:
          meta:
            data_category: site_activity
            record_time: "coalesce(earned_at, _loaded_at)"
        columns:
          - name: point_event_id
            data_type: VARCHAR
            description: "Award key."
            config: {meta: {pii: direct, raw_key: true}}
          - name: member_email
            data_type: VARCHAR
            description: "The member's e-mail as typed."
            config: {meta: {pii: direct, identifier_type: email}}
          - name: points
            data_type: INTEGER
            description: "Points awarded."
            config: {meta: {pii: none}}
          - name: earned_at
            data_type: TIMESTAMP
            description: "When the points were earned (UTC)."
            config: {meta: {pii: none}}
          - name: _loaded_at
            data_type: TIMESTAMP
            description: "When the loader wrote the row."
            config: {meta: {pii: none}}
          - name: _batch_id
            data_type: VARCHAR
            description: "The load batch."
            config: {meta: {pii: none}}
"""
STAGING_MODEL = "{{ stage_landing_table('loyalty', 'point_events', key='point_event_id') }}\n"

RECENT = dt.datetime(2026, 10, 1, 12, 0)
EXPIRED = dt.datetime(2024, 1, 1, 12, 0)  # older than site_activity's 395 days
POINTS = [
    ("lp-1", f"  {NOVA[1]} ", 10, RECENT),
    ("lp-2", ORLA[1].upper(), 20, RECENT),
    ("lp-3", ORLA[1], 30, EXPIRED),
    ("lp-4", SOLO, 40, RECENT),
    (None, ORLA[1], 50, RECENT),  # no key: quarantined
    ("lp-2", ORLA[1].upper(), 20, RECENT),  # a re-delivery: duplicate
]


def copy_project(target: Path) -> Path:
    """The dbt project (models, macros, seeds, tests, configuration) under ``target``."""
    for name in ("models", "macros", "seeds", "tests", "analyses"):
        shutil.copytree(ROOT / name, target / name)
    shutil.copytree(ROOT / "docs" / "blocks", target / "docs" / "blocks")
    for name in ("dbt_project.yml", "profiles.yml", "selectors.yml"):
        shutil.copyfile(ROOT / name, target / name)
    return target


def plant(raw_db: Path) -> None:
    con = duckdb.connect(str(raw_db))
    try:
        con.execute("create schema loyalty")
        con.execute(
            "create table loyalty.point_events (point_event_id varchar, member_email varchar, "
            "points integer, earned_at timestamp, _loaded_at timestamp not null, "
            "_batch_id varchar not null)"
        )
        con.executemany(
            "insert into loyalty.point_events values (?, ?, ?, ?, ?, ?)",
            [(*row, LOADED_AT, BATCH) for row in POINTS],
        )
        for customer_id, email in (NOVA, ORLA):
            con.execute(
                "insert into crm.customers by name select ? as customer_id, ? as email, "
                "'Test' as first_name, 'Member' as last_name, ? as created_at, ? as updated_at, "
                "false as is_deleted, ? as _loaded_at, ? as _batch_id",
                [customer_id, email, RECENT, RECENT, LOADED_AT, BATCH],
            )
        requests = pa.table(
            {
                "request_id": [ERASURE_REQUEST],
                "subject_id_type": ["customer_id"],
                "subject_id": [NOVA[0]],
                "request_type": ["erasure"],
                "jurisdiction": ["EU"],
                "received_at": [dt.datetime(2026, 10, 20)],
                "details": ["{}"],
                "is_verified": [True],
                "_loaded_at": [LOADED_AT],
                "_batch_id": [BATCH],
            }
        )
        con.register("planted", requests)
        con.execute("insert into privacy.subject_requests by name select * from planted")
    finally:
        con.close()


@dataclass
class NewTable:
    workspace: Workspace
    project: Path
    env: dict[str, str]

    def email_key(self, email: str) -> str:
        master = keys.load_master_key({keys.ENV_KEY: self.workspace.key})
        value = pseudonym.pseudonym(
            keys.pseudonym_key(master, "identity"),
            master.version,
            "email",
            normalise.normalise_email(email),
        )
        assert value is not None
        return value


@pytest.fixture(scope="module")
def new_table(built: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NewTable]:
    root = tmp_path_factory.mktemp("new_table")
    project = copy_project(root / "project")
    (project / "models" / "staging" / "loyalty").mkdir()
    (project / "models" / "staging" / "loyalty" / "_loyalty__sources.yml").write_text(
        SOURCES_YML, encoding="utf-8"
    )
    (
        project / "models" / "staging" / "loyalty" / "stg_loyalty__point_events_triaged.sql"
    ).write_text(STAGING_MODEL, encoding="utf-8")
    ws = copy_workspace(built, root / "workspace")
    plant(ws.raw_db)
    env = {**ws.env, "DBT_PROJECT_DIR": str(project)}
    run_ok(ws.dbt("build", env={"DBT_PROJECT_DIR": str(project)}))
    yield NewTable(ws, project, env)


def _purge(new_table: NewTable, ws: Workspace) -> PurgeResult:
    with environment({"DBT_PROJECT_DIR": str(new_table.project)}):
        return purge(
            raw_db=ws.raw_db,
            warehouse_db=ws.warehouse_db,
            vault_db=ws.vault_db,
            as_of=dt.datetime(2026, 11, 1),
            operator="pytest",
            environ={"CDP_MASTER_KEY": ws.key},
        )


def test_its_identifiers_are_pseudonymised_in_staging(new_table: NewTable) -> None:
    ws = new_table.workspace
    columns = [
        r[0]
        for r in query(
            ws.warehouse_db,
            "select column_name from information_schema.columns "
            "where table_name = 'stg_loyalty__point_events_triaged' order by ordinal_position",
        )
    ]
    assert "member_email" not in columns and "member_email_key" in columns, columns
    kept = query(
        ws.warehouse_db,
        "select point_event_key, member_email_key, points from "
        "staging.stg_loyalty__point_events_triaged where row_status = 'kept' order by points",
    )
    assert [(r[1], r[2]) for r in kept] == [
        (new_table.email_key(NOVA[1]), 10),
        (new_table.email_key(ORLA[1]), 20),
        (new_table.email_key(ORLA[1]), 30),
        (new_table.email_key(SOLO), 40),
    ]
    assert all(str(r[0]).startswith("v") and "lp-" not in str(r[0]) for r in kept)
    # No plaintext e-mail of the new table in any string column of the warehouse.
    con = duckdb.connect(str(ws.warehouse_db), read_only=True)
    try:
        for schema, table, column in con.execute(
            "select table_schema, table_name, column_name from information_schema.columns "
            "where data_type = 'VARCHAR' and table_schema <> 'information_schema'"
        ).fetchall():
            hits = con.execute(
                f'select count(*) from "{schema}"."{table}" where lower("{column}") like ?',
                ["%solo.member@%"],
            ).fetchall()[0][0]
            assert hits == 0, f"{schema}.{table}.{column} holds a plaintext e-mail"
    finally:
        con.close()


def test_an_identifier_seen_only_there_is_sealed_into_the_vault(new_table: NewTable) -> None:
    rows = query(
        new_table.workspace.vault_db,
        "select id_type from main.vault_identifiers where pseudonym = ?",
        [new_table.email_key(SOLO)],
    )
    assert rows == [("email",)]


def test_every_raw_row_is_accounted_for(new_table: NewTable) -> None:
    ws = new_table.workspace
    rows = query(
        ws.warehouse_db,
        "select raw_rows, kept_rows, duplicate_rows, superseded_rows, quarantined_rows "
        "from audit.audit_row_accounting where source_table = 'loyalty.point_events'",
    )
    assert rows == [(6, 4, 1, 0, 1)]
    quarantined = query(
        ws.warehouse_db,
        "select reject_reason from audit.audit_quarantine "
        "where source_table = 'loyalty.point_events'",
    )
    assert quarantined == [("missing_key",)]


def test_the_persons_rows_are_in_their_access_export(new_table: NewTable) -> None:
    ws = new_table.workspace
    with environment({"DBT_PROJECT_DIR": str(new_table.project)}):
        exported = access.export(
            id_type="customer_id",
            value=ORLA[0],
            officer="pytest officer",
            reason="DSR-NEWTABLE-ACCESS-1",
            raw_db=ws.raw_db,
            warehouse_db=ws.warehouse_db,
            vault_db=ws.vault_db,
            environ={"CDP_MASTER_KEY": ws.key},
        )
    rows = exported.data["raw_records"]["loyalty.point_events"]
    assert sorted(r["points"] for r in rows) == [20, 20, 30, 50]
    assert all(normalise.normalise_email(r["member_email"]) == ORLA[1] for r in rows)


def test_retention_and_erasure_destroy_its_rows(new_table: NewTable, tmp_path: Path) -> None:
    ws = copy_workspace(new_table.workspace, tmp_path)
    before = query(ws.raw_db, "select count(*) from loyalty.point_events")[0][0]
    result = _purge(new_table, ws)
    remaining = query(
        ws.raw_db, "select point_event_id, points from loyalty.point_events order by points"
    )
    # lp-3 expired (2024), lp-1 was Nova's: both destroyed; the rest stays.
    assert remaining == [("lp-2", 20), ("lp-2", 20), ("lp-4", 40), (None, 50)], remaining
    assert before - len(remaining) == 2
    records = query(
        ws.raw_db,
        "select reason, method, data_category, sum(row_count) from audit.destruction_log "
        "where source_table = 'loyalty.point_events' group by all order by all",
    )
    assert records == [
        ("erasure_request", "delete_rows", "site_activity", 1),
        ("retention_expired", "delete_rows", "site_activity", 1),
    ]
    assert result.rows() >= 2
