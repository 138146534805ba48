"""Reliability under bad data, bad configuration and hostile values; idempotent rebuilds.

One module fixture builds a 150-customer landing zone generated at a 30%
dirty-data rate, with hand-made hostile rows added (quotes, semicolons, SQL
comments, NULs, very long and non-Latin values, broken request details JSON),
through a real in-process ``dbt build``. A second warehouse is built from the
same landing zone, key and ``as_of`` to prove rebuilds are identical.
Configuration errors run real dbt / cdp commands and check that each gives one
clear message and writes no database file.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import secrets
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from dbt.adapters.duckdb import environments
from dbt.adapters.duckdb.credentials import DuckDBCredentials
from hypothesis import given, settings
from hypothesis import strategies as st

from cdp import cli, contract
from cdp import vault as vault_tool
from cdp.as_of import parse_as_of
from cdp.build_lock import acquire_build_lock, lock_path
from cdp.preflight import ConfigurationError, check_vars
from conftest import DbtResult, Workspace, generate_landing, make_workspace

AS_OF = "2026-11-01"
AS_OF_VARS = '{as_of: "2026-11-01"}'
CUSTOMERS = 150
DIRTY_RATE = 0.3
# This module's fixtures that run dbt: a test using one is marked dbt (conftest).
DBT_FIXTURES = ("dirty", "config_ws")

# (raw table, triaged model)
TRIAGED = {
    "crm.customers": "stg_crm__customers_triaged",
    "web.events": "stg_web__events_triaged",
    "shop.orders": "stg_shop__orders_triaged",
    "shop.order_items": "stg_shop__order_items_triaged",
    "messaging.message_events": "stg_messaging__message_events_triaged",
    "privacy.consent_events": "stg_privacy__consent_events_triaged",
    "privacy.subject_requests": "stg_privacy__subject_requests_triaged",
}
STATUSES = {"kept", "duplicate", "superseded", "quarantined"}
PUBLISHED = [
    "marts.dim_customer_profile",
    "marts.fct_profile_events",
    "marts.rpt_email_audience",
    "marts.rpt_sms_audience",
    "marts.rpt_push_audience",
]
HOSTILE = [
    "'; drop table staging.stg_crm__customers_triaged; --",
    "Robert'); DROP TABLE students;--",
    '" or ""="',
    "\\x00\\' union select 1 --",
    "a\x00b",
    "Ёжик-Ñoño 日本 \u202eevil\u202c",
    "x" * 20_000,
    "{{ env_var('CDP_MASTER_KEY') }}",
]


def _hostile_rows(raw: Path) -> None:
    """Hand-made hostile rows, appended the way a loader would (a batch of their own)."""
    con = duckdb.connect(str(raw))
    loaded = dt.datetime(2026, 10, 30, 12, 0, 0)
    try:
        for i, text in enumerate(HOSTILE):
            con.execute(
                "insert into crm.customers values (?, ?, ?, ?, ?, null, null, null, ?, null, ?, "
                "?, ?, ?, ?, ?, false, ?, 'batch_hostile')",
                [
                    f"H{i}-{text[:30]}",
                    f"{text[:40]}@example.com",
                    text,
                    text,
                    text,
                    text,
                    text,
                    "ru",
                    text,
                    text,
                    loaded,
                    loaded,
                    loaded,
                ],
            )
            con.execute(
                "insert into privacy.subject_requests values (?, 'email', ?, ?, 'EU', ?, ?, true, "
                "?, 'batch_hostile')",
                [
                    f"RQ-H{i}",
                    f"h{i}@example.com",
                    "rectification" if i % 2 else "objection",
                    loaded,
                    '{"field": "first_name", "value": ' + repr(text) + "}"
                    if i % 2
                    else '{"purpose_code": "' + text[:100] + '"}',
                    loaded,
                ],
            )
            con.execute(
                "insert into privacy.consent_events values (?, 'email', ?, ?, 'grant', 'web_form', "
                "?, ?, ?, ?, 'batch_hostile')",
                [f"CE-H{i}", f"h{i}@example.com", text[:200], text[:50], text[:50], loaded, loaded],
            )
    finally:
        con.close()


_BUILD_PROBLEMS: dict[str, list[str]] = {}


def _problems(result: DbtResult) -> dict[str, list[str]]:
    """Nodes of a dbt build that did not succeed, by kind: models (incl. seeds) and tests."""
    found: dict[str, list[str]] = {"models": [], "tests": []}
    for node_result in getattr(result.result, "results", None) or []:
        status = str(getattr(node_result.status, "value", node_result.status)).lower()
        if status in ("success", "pass", "warn", "no-op"):
            continue
        node = node_result.node
        kind = "tests" if str(node.resource_type).endswith("test") else "models"
        found[kind].append(f"{node.unique_id}: {status}")
    return found


@pytest.fixture(scope="module")
def dirty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """A 30%-dirty landing zone plus hostile rows, built once (``dbt build``).

    The fixture needs every model built; data-test verdicts are asserted by
    test_dirty_build_passes_every_data_test, so one failing test elsewhere in the
    project does not hide what the other tests here can still prove.
    """
    ws = make_workspace(tmp_path_factory.mktemp("dirty"))
    generate_landing(ws.raw_db, ws.truth_db, customers=CUSTOMERS, dirty_rate=DIRTY_RATE)
    _hostile_rows(ws.raw_db)
    result = ws.dbt("build", "--vars", AS_OF_VARS)
    problems = _problems(result)
    if result.result is None or problems["models"]:
        pytest.fail(
            f"dbt build did not build every model on the 30%-dirty landing zone: "
            f"{problems['models'][:20]}\n" + result.output[-6000:]
        )
    _BUILD_PROBLEMS.update(problems)
    yield ws


def test_dirty_build_passes_every_data_test(dirty: Workspace) -> None:
    """The 30%-dirty build with hostile rows passes every dbt data and unit test."""
    assert _BUILD_PROBLEMS["tests"] == []


# --------------------------------------------------------------------------- 1. hostile data


def test_dirty_landing_zone_accounts_for_every_raw_row(dirty: Workspace) -> None:
    """raw rows per table and batch == triaged rows, each with one known status; quarantine has a reason."""
    con = duckdb.connect(str(dirty.warehouse_db), read_only=True)
    con.execute(f"attach '{dirty.raw_db}' as raw (read_only)")
    quarantined = 0
    try:
        for raw_table, model in TRIAGED.items():
            raw = dict(
                con.execute(
                    f"select _batch_id, count(*) from raw.{raw_table} group by 1"
                ).fetchall()
            )
            triaged = con.execute(
                f"select _batch_id, row_status, count(*), count(*) filter (where "
                f"row_status = 'quarantined' and coalesce(reject_reason, '') = '') "
                f"from staging.{model} group by all"
            ).fetchall()
            per_batch: dict[str, int] = {}
            for batch, status, n, unexplained in triaged:
                assert status in STATUSES, (model, status)
                assert unexplained == 0, f"{model}: quarantined rows without a reason"
                per_batch[batch] = per_batch.get(batch, 0) + n
                quarantined += n if status == "quarantined" else 0
            assert per_batch == raw, f"{raw_table}: raw {raw} != triaged {per_batch}"
        accounting = con.execute(
            "select count(*) from audit.audit_row_accounting where raw_rows <> kept_rows + "
            "duplicate_rows + superseded_rows + quarantined_rows"
        ).fetchall()
        assert accounting == [(0,)]
    finally:
        con.close()
    assert quarantined > 50  # the dirt is really there (measured: several hundred rows)


def test_hostile_rows_are_data_not_sql(dirty: Workspace) -> None:
    """Quotes, semicolons and Jinja in values were stored or quarantined; nothing ran."""
    con = duckdb.connect(str(dirty.warehouse_db), read_only=True)
    try:
        for model in TRIAGED.values():  # no table was dropped
            assert con.execute(f"select count(*) from staging.{model}").fetchall()[0][0] > 0
        batches = dict(
            con.execute(
                "select source_table, raw_rows from audit.audit_row_accounting "
                "where _batch_id = 'batch_hostile'"
            ).fetchall()
        )
        assert batches == {
            "crm.customers": len(HOSTILE),
            "privacy.subject_requests": len(HOSTILE),
            "privacy.consent_events": len(HOSTILE),
        }
        # A request keeps its right whatever its details JSON looks like (kept and flagged).
        statuses = con.execute(
            "select row_status, count(*) from staging.stg_privacy__subject_requests_triaged "
            "where _batch_id = 'batch_hostile' group by 1"
        ).fetchall()
        assert dict(statuses).get("kept", 0) == len(HOSTILE)
    finally:
        con.close()


# --------------------------------------------------------------------------- 2. idempotency


def _checksum(con: duckdb.DuckDBPyConnection, relation: str) -> tuple[int, str]:
    rows = con.execute(f"select * from {relation} order by all").fetchall()
    return len(rows), hashlib.sha256(repr(rows).encode()).hexdigest()


def test_rebuild_gives_identical_published_and_profile_relations(
    dirty: Workspace, tmp_path: Path
) -> None:
    """A second warehouse from the same landing zone, key and as_of: every relation equal by checksum."""
    second = Workspace(
        root=tmp_path,
        key=dirty.key,
        env={
            **dirty.env,
            "CDP_WAREHOUSE_DB": str(tmp_path / "warehouse.duckdb"),
            "CDP_VAULT_DB": str(tmp_path / "vault.duckdb"),
        },
    )
    models = " ".join("+" + r.split(".")[1] for r in PUBLISHED)
    result = second.dbt(
        "build",
        "--select",
        models,
        "--resource-type",
        "seed",
        "--resource-type",
        "model",
        "--vars",
        AS_OF_VARS,
    )
    assert result.success, result.output[-4000:]
    first_con = duckdb.connect(str(dirty.warehouse_db), read_only=True)
    second_con = duckdb.connect(str(second.warehouse_db), read_only=True)
    try:
        for relation in PUBLISHED:
            first, again = _checksum(first_con, relation), _checksum(second_con, relation)
            assert first == again, relation
        n_profile = _checksum(first_con, "marts.dim_customer_profile")[0]
        # The checksum is sensitive: one changed value in one row changes it.
        first_con.execute("create temp table p as select * from marts.dim_customer_profile")
        first_con.execute("update p set person_key = person_key || 'x' where rowid = 0")
        assert _checksum(first_con, "p") != _checksum(second_con, "marts.dim_customer_profile")
    finally:
        first_con.close()
        second_con.close()
    assert n_profile > 0


# --------------------------------------------------------------------------- 5. files


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes")
@pytest.mark.dbt  # through request.getfixturevalue
@pytest.mark.parametrize("build", ["built", "dirty"])
def test_zone_files_are_owner_only(request: pytest.FixtureRequest, build: str) -> None:
    """Warehouse, vault, raw zone and the build lock: 0600 after a real build."""
    built: Workspace = request.getfixturevalue(build)
    for path in (built.warehouse_db, built.vault_db, built.raw_db, lock_path(built.warehouse_db)):
        assert _mode(path) == 0o600, f"{path}: {_mode(path):04o}"
    for wal in built.root.glob("*.wal"):
        assert _mode(wal) == 0o600, wal


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes")
def test_plugin_tightens_a_readable_warehouse_and_creates_folders_0700(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A warehouse left 0644 by an older build is made 0600; a folder it creates is 0700."""
    monkeypatch.setenv("CDP_MASTER_KEY", secrets.token_urlsafe(48))
    old = tmp_path / "old" / "warehouse.duckdb"
    old.parent.mkdir()
    duckdb.connect(str(old)).close()
    os.chmod(old, 0o644)
    for path in (old, tmp_path / "new" / "deeper" / "warehouse.duckdb"):
        creds = DuckDBCredentials.from_dict(
            {
                "path": str(path),
                "schema": "main",
                "plugins": [{"module": "cdp.plugin", "config": {"stage": "analytics"}}],
            }
        )
        env = environments.create(creds)
        env.handle().close()  # type: ignore[no-untyped-call]
        env.close()  # type: ignore[no-untyped-call]
        assert _mode(path) == 0o600, path
    assert _mode(tmp_path / "new" / "deeper") == 0o700


# --------------------------------------------------------------------------- 5. configuration errors


def _no_database_written(ws: Workspace) -> None:
    assert not ws.warehouse_db.exists()
    assert not ws.vault_db.exists()
    assert not lock_path(ws.warehouse_db).exists()


def _one_clear_message(result: DbtResult, capfd: pytest.CaptureFixture[str], expected: str) -> None:
    """The console shows the message on exactly one line, and no traceback."""
    console = capfd.readouterr()
    printed = console.out + console.err
    assert expected in printed, result.output[-3000:]
    assert len([line for line in printed.splitlines() if expected in line]) == 1, printed[-3000:]
    assert "Traceback" not in printed


@pytest.fixture(scope="module")
def config_ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """One workspace for the failing runs. Its paths never change (dbt's profile, and so
    its partial parse, stay valid); each test changes the files or the key instead."""
    ws = make_workspace(tmp_path_factory.mktemp("config"))
    con = duckdb.connect(str(ws.raw_db))
    for sql in contract.create_all_sql():  # an empty landing zone that matches the contract
        con.execute(sql)
    con.close()
    return ws


def test_missing_key_is_one_message_and_writes_nothing(
    config_ws: Workspace, capfd: pytest.CaptureFixture[str]
) -> None:
    result = config_ws.dbt("build", "--vars", AS_OF_VARS, env={"CDP_MASTER_KEY": ""})
    assert not result.success
    _one_clear_message(result, capfd, "CDP_MASTER_KEY is not set")
    _no_database_written(config_ws)


def test_missing_raw_database_is_one_message_and_writes_nothing(
    config_ws: Workspace, capfd: pytest.CaptureFixture[str]
) -> None:
    aside = config_ws.raw_db.with_name("aside.duckdb")
    config_ws.raw_db.rename(aside)
    try:
        result = config_ws.dbt("build", "--vars", AS_OF_VARS)
        assert not config_ws.raw_db.exists()  # not created by the attempt either
    finally:
        aside.rename(config_ws.raw_db)
    assert not result.success
    _one_clear_message(result, capfd, "no landing zone at")
    assert "set CDP_RAW_DB" in result.output
    _no_database_written(config_ws)


def test_wrong_landing_zone_schema_is_one_message_and_writes_nothing(
    config_ws: Workspace, capfd: pytest.CaptureFixture[str]
) -> None:
    backup = config_ws.raw_db.with_name("backup.duckdb")
    shutil.copy(config_ws.raw_db, backup)
    con = duckdb.connect(str(config_ws.raw_db))
    con.execute("alter table crm.customers drop column passport_number")
    con.execute("alter table web.events alter column event_at type varchar")
    con.close()
    try:
        result = config_ws.dbt("build", "--vars", AS_OF_VARS)
    finally:
        shutil.move(backup, config_ws.raw_db)
    assert not result.success
    _one_clear_message(result, capfd, "does not match the contract")
    assert "web.events.event_at: type VARCHAR, the contract says TIMESTAMP" in result.output
    _no_database_written(config_ws)


def test_unknown_as_of_format_is_one_message_and_writes_nothing(
    config_ws: Workspace, capfd: pytest.CaptureFixture[str]
) -> None:
    result = config_ws.dbt("build", "--vars", '{as_of: "yesterday"}')
    assert not result.success
    _one_clear_message(result, capfd, "as_of must be an ISO 8601 date")
    assert "yesterday" in result.output
    _no_database_written(config_ws)


# --------------------------------------------------------------------------- 6. injection


def test_cdp_build_refuses_an_injected_as_of_before_writing(
    config_ws: Workspace, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through `cdp build` (its extra arguments go to dbt): quotes, a semicolon and a comment
    in as_of are refused by the plugin with the as_of message; nothing is written or run."""
    for name, value in config_ws.env.items():
        monkeypatch.setenv(name, value)
    injected = "2026-11-01'; drop table staging.stg_crm__customers_triaged; --"
    code = cli.main(
        [
            "build",
            "--vars",
            '{as_of: "' + injected + '"}',
            "--target-path",
            str(config_ws.root / "target"),
            "--log-path",
            str(config_ws.root / "logs"),
        ]
    )
    assert code == 1
    printed = capfd.readouterr()
    assert "as_of must be an ISO 8601 date" in printed.out + printed.err + _last_log(config_ws.root)
    _no_database_written(config_ws)


def _last_log(root: Path) -> str:
    log = root / "logs" / "dbt.log"
    return log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""


hostile_text = st.one_of(
    st.text(st.characters(codec="utf-8"), max_size=60),
    st.sampled_from(HOSTILE),
    st.builds(lambda s: "2026-11-01" + s, st.text(max_size=20).filter(lambda s: s != "")),
)


@settings(max_examples=200, deadline=None)
@given(value=hostile_text)
def test_as_of_accepts_only_iso_moments(value: str) -> None:
    """Anything the parser accepts is an ISO date/time; everything else is refused by check_vars."""
    iso = re.fullmatch(
        r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})?)?",
        value.strip(),
    )
    try:
        parse_as_of(value)
    except ValueError as exc:
        assert "as_of must be an ISO 8601" in str(exc)
        assert len(str(exc)) < 600  # a very long value is not echoed whole
        with pytest.raises(ConfigurationError):
            check_vars({"as_of": value})
    else:
        assert iso is not None, value
        check_vars({"as_of": value})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("identity_max_customers_per_identifier", "3; drop table x"),
        ("identity_max_identifiers_per_identifier", -1),
        ("identity_max_identifiers_per_identifier", True),
        ("consent_identity_map", "identity' or '1"),
        ("identity_portable_components", "false; --"),
        ("default_phone_region", "RU'"),
    ],
)
def test_vars_that_reach_sql_are_validated(name: str, value: object) -> None:
    with pytest.raises(ConfigurationError, match=name):
        check_vars({name: value})


def test_valid_vars_pass() -> None:
    check_vars(
        {
            "as_of": dt.date(2026, 11, 1),
            "identity_max_customers_per_identifier": 3,
            "consent_identity_map": "fallback",
            "identity_portable_components": True,
            "default_phone_region": "de",
        }
    )
    assert parse_as_of("2026-11-01T09:30:00+03:00") == dt.datetime(2026, 11, 1, 6, 30)


HOSTILE_ARGUMENTS = [*HOSTILE[:4], "v1_" + "0" * 64 + "' or 1=1 --"]


def _vault_main(dirty: Workspace, *args: str) -> int:
    saved = {n: os.environ.get(n) for n in ("CDP_MASTER_KEY", "CDP_KEY_VERSION")}
    os.environ["CDP_MASTER_KEY"] = dirty.key
    os.environ.pop("CDP_KEY_VERSION", None)
    try:
        return vault_tool.main(
            ["--vault", str(dirty.vault_db), *args, "--officer", "test", "--reason", "request RQ-1"]
        )
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _vault_rows(dirty: Workspace) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(dirty.vault_db), read_only=True)
    try:
        return con.execute("select count(*) from main.vault_identifiers").fetchall()
    finally:
        con.close()


@pytest.mark.parametrize("hostile", HOSTILE_ARGUMENTS)
def test_vault_find_binds_hostile_values(dirty: Workspace, hostile: str) -> None:
    """The officer's tool: a hostile --value finds nothing and changes nothing."""
    rows = _vault_rows(dirty)
    assert _vault_main(dirty, "find", "--id-type", "email", "--value", hostile) == 3
    assert _vault_rows(dirty) == rows


@pytest.mark.parametrize("hostile", HOSTILE_ARGUMENTS[-1:])
def test_vault_lookup_binds_hostile_pseudonyms(dirty: Workspace, hostile: str) -> None:
    """The officer's tool: a hostile --pseudonym finds nothing and changes nothing."""
    rows = _vault_rows(dirty)
    assert _vault_main(dirty, "lookup", "--pseudonym", hostile) == 3
    assert _vault_rows(dirty) == rows


# --------------------------------------------------------------------------- logs


def _raw_pii(raw: Path) -> set[str]:
    con = duckdb.connect(str(raw), read_only=True)
    try:
        rows = con.execute(
            "select email from crm.customers union select phone from crm.customers "
            "union select first_name from crm.customers union select last_name from crm.customers "
            "union select email from shop.orders union select phone from shop.orders "
            "union select recipient from messaging.message_events"
        ).fetchall()
    finally:
        con.close()
    # Short values ("Ян", "+7") would match unrelated text; 5+ characters identify.
    return {str(r[0]).strip() for r in rows if r[0] is not None and len(str(r[0]).strip()) >= 5}


def _project_constants() -> str:
    """Text the project itself ships (seeds, SQL, docs): public constants such as the junk
    phone number +70000000000 are reference data there, not someone's PII."""
    root = Path(__file__).resolve().parents[1]
    files = [
        *root.glob("seeds/**/*.csv"),
        *root.glob("seeds/**/*.yml"),
        *root.glob("macros/**/*.sql"),
        *root.glob("models/**/*.sql"),
        *root.glob("models/**/*.yml"),
    ]
    return "\n".join(f.read_text(encoding="utf-8", errors="replace") for f in files)


def _pii_in(text: str, values: set[str]) -> list[str]:
    return sorted(v for v in values if v in text)[:10]


@pytest.mark.dbt  # through request.getfixturevalue
@pytest.mark.parametrize("build", ["built", "dirty"])
def test_dbt_logs_hold_no_raw_pii(request: pytest.FixtureRequest, build: str) -> None:
    """Every file under logs/ of a real build, scanned for raw emails, phones and names."""
    built: Workspace = request.getfixturevalue(build)
    shipped = _project_constants()
    values = {v for v in _raw_pii(built.raw_db) if v not in shipped}
    assert len(values) > 500
    logs = list((built.root / "logs").rglob("*"))
    text = "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in logs if p.is_file())
    assert len(text) > 10_000  # the logs are really there
    assert _pii_in(text, values) == []
    planted = text + "\n" + sorted(values)[0]  # the scan finds a value when there is one
    assert _pii_in(planted, values) != []


# --------------------------------------------------------------------------- 4. two builds at once


def test_second_build_on_a_warehouse_fails_clearly_while_one_runs(
    config_ws: Workspace, capfd: pytest.CaptureFixture[str]
) -> None:
    """Another process holds the build lock: dbt build stops at once, names it, writes nothing."""
    ws = config_ws
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from cdp.build_lock import acquire_build_lock; "
            "acquire_build_lock(Path(sys.argv[1])); print('held', flush=True); time.sleep(120)",
            str(ws.warehouse_db),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        capfd.readouterr()
        result = ws.dbt("build", "--vars", AS_OF_VARS)
        assert not result.success
        _one_clear_message(result, capfd, "another build is running on the warehouse")
        assert f"pid {holder.pid}" in result.output
        assert not ws.warehouse_db.exists() and not ws.vault_db.exists()
        assert lock_path(ws.warehouse_db).read_text().startswith(f"pid {holder.pid}")
    finally:
        holder.kill()
        holder.wait()
    deadline = time.monotonic() + 10
    while True:  # the kernel drops the lock with the process: no stale lock after a crash
        try:
            acquire_build_lock(ws.warehouse_db)
            break
        except ConfigurationError:
            assert time.monotonic() < deadline
            time.sleep(0.1)
