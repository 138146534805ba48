"""The Spark build the Spark tests share: one landing zone built on DuckDB and on Spark, once.

One small generated landing zone and one key file. DuckDB: the project's privacy stage as
``cdp build`` runs it (seeds, then the models ported to Spark). Spark: ``python -m
cdp.spark_stage`` in a fresh JVM (the JVM reads the key file named in its environment): the
landing zone loaded into Spark tables, the keyed functions registered behind the lockdown,
the same dbt commands on the ``spark_privacy`` target, every relation it made written out as
Parquet (``--dump``), and the key-leak audit's trail (``--audit``: the event log and tables
uncompressed, Spark's log, EXPLAIN of the models that call a keyed function).

conftest's session fixture ``spark_builds`` makes it once per ``make test-spark``:
test_spark_project.py compares the two builds, test_spark_leaks.py scans every file the
Spark build left for the key.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import duckdb

from cdp import spark_stage
from conftest import generate_landing, run_dbt

CUSTOMERS = 80
AS_OF = "2026-11-01 00:00:00"
VARS = "{as_of: '" + AS_OF + "'}"


@dataclass
class Builds:
    root: Path
    raw_db: Path
    warehouse_db: Path
    dump: Path
    key_file: Path
    spark_seconds: float

    @property
    def spark_workdir(self) -> Path:
        """The Spark build's folder: warehouse, metastore, dbt's target/ and logs/, its output."""
        return self.root / "spark"

    @property
    def audit(self) -> Path:
        """The audit trail (``--audit``): events/, spark.log, explain/."""
        return self.spark_workdir / "audit"


def key_file(folder: Path) -> Path:
    """A fresh random master key in an owner-only file in the new folder ``folder``."""
    folder.mkdir(mode=0o700)
    key = folder / "master.key"
    key.write_text(secrets.token_urlsafe(48))
    key.chmod(0o600)
    return key


def spark_env(key_file: Path, more: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment for a Spark JVM: the key file named, no key in a variable."""
    env = {k: v for k, v in os.environ.items() if k != "CDP_MASTER_KEY"}
    env.update({"CDP_MASTER_KEY_FILE": str(key_file), "TZ": "UTC", **(more or {})})
    return env


def run_spark_stage(
    workdir: Path,
    raw_db: Path,
    key_file: Path,
    *more: str,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``python -m cdp.spark_stage`` into ``workdir``; its stdout and stderr are also kept
    there (``build.out``, ``build.err``: what a console would have shown)."""
    command = [sys.executable, "-m", "cdp.spark_stage", "--raw-db", str(raw_db)]
    command += ["--workdir", str(workdir), "--vars", VARS, *more]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=spark_env(key_file, env),
        timeout=900,
        check=False,
    )
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "build.out").write_text(done.stdout, encoding="utf-8")
    (workdir / "build.err").write_text(done.stderr, encoding="utf-8")
    return done


#: Subject requests added to the generated landing zone as a batch of their own: the shapes
#: where DuckDB and Spark read text differently, which 80 generated customers hardly ever
#: produce. Subject ids that match a pattern only in part, or before a final line break
#: (request_id, subject_id_type, subject_id; an access request, details '{}'):
HOSTILE_SUBJECTS: tuple[tuple[str, str, str], ...] = (
    ("DSR-9000001", "email", "abc123"),
    ("DSR-9000002", "email", "abc 123x"),
    ("DSR-9000003", "customer_id", "+7 (900) 123-45-67"),
    ("DSR-9000004", "phone", "AB12\n"),
    ("DSR-9000005", "phone", "x+79001234567"),
    ("DSR-9000006", "email", "erased-by:DSR-0000002"),
)
#: Details DuckDB reads as JSON and Spark's builtins do not, or the reverse (trailing comma,
#: text after the value, duplicate keys, NaN), and values that are no string (request_id,
#: request_type, details; the subject a customer id):
HOSTILE_DETAILS: tuple[tuple[str, str, str | None], ...] = (
    ("DSR-9000010", "rectification", '{"field": "email", "value": "New.Person@Example.com",}'),
    ("DSR-9000011", "rectification", '{"field": "phone", "value": "+7 900 123 45 67"} trailing'),
    (
        "DSR-9000012",
        "rectification",
        '{"field": "email", "field": "phone", "value": "89007654321"}',
    ),
    ("DSR-9000013", "rectification", '{"field": "phone", "value": NaN}'),
    ("DSR-9000014", "rectification", '{"field": "email", "value": {"a": 1}}'),
    ("DSR-9000015", "rectification", '{"field": " Email ", "value": "x.y@mail.ru"}'),
    ("DSR-9000016", "rectification", '{"field": "phone", "value": 79007654321}'),
    ("DSR-9000017", "objection", '{"purpose_code": " Marketing_Email ",}'),
    ("DSR-9000018", "objection", '[{"purpose_code": "profiling"}]'),
    ("DSR-9000019", "rectification", None),
)


def plant_landing(raw_db: Path) -> None:
    """Add the hostile requests (batch ``batch_spark``) and a destruction log, as the purge writes
    it, closing two of them (stg_rights__request_closures reads it) to the landing zone."""
    from cdp.purge.records import LOG_COLUMNS

    loaded, received = dt.datetime(2026, 10, 30, 12), dt.datetime(2026, 10, 20, 9, 30)
    con = duckdb.connect(str(raw_db))
    try:
        requests: list[tuple[str, str, str, str, str | None]] = [
            (r, t, s, "access", "{}") for r, t, s in HOSTILE_SUBJECTS
        ]
        requests += [(r, "customer_id", "C-HOSTILE-1", k, d) for r, k, d in HOSTILE_DETAILS]
        for request_id, id_type, subject, request_type, details in requests:
            con.execute(
                "insert into privacy.subject_requests (request_id, subject_id_type, subject_id, "
                "request_type, jurisdiction, received_at, details, is_verified, _loaded_at, "
                "_batch_id) values (?, ?, ?, ?, 'EU', ?, ?, true, ?, 'batch_spark')",
                [request_id, id_type, subject, request_type, received, details, loaded],
            )
        columns = ", ".join(f"{name} {kind}" for name, kind in LOG_COLUMNS)
        con.execute("create schema if not exists audit")
        con.execute(f"create table audit.destruction_log ({columns})")
        for number, (closed, reason, destroyed) in enumerate(
            (
                ("DSR-9000003", "erasure_request", dt.datetime(2026, 10, 25, 8)),
                ("DSR-9000003", "erasure_request", dt.datetime(2026, 10, 24, 8)),
                ("DSR-9000006", "erasure_request", dt.datetime(2026, 10, 26, 8)),
                (None, "retention_expired", dt.datetime(2026, 10, 26, 9)),
                ("DSR-9000001", "inactivity_limit", dt.datetime(2026, 10, 26, 9)),
            )
        ):
            con.execute(
                "insert into audit.destruction_log (destruction_id, run_id, destroyed_at, as_of, "
                "source_table, data_category, reason, method, row_count, keep_until, operator, "
                "tool, request_id) values (?, 'run-1', ?, ?, 'privacy.subject_requests', "
                "'subject_requests', ?, 'delete_rows', 1, ?, 'test', 'purge', ?)",
                [f"d-{number}", destroyed, destroyed, reason, destroyed, closed],
            )
    finally:
        con.close()


def make_builds(root: Path) -> Builds:
    """The landing zone, its DuckDB build and its audited Spark build, all under ``root``."""
    raw_db, key = root / "raw.duckdb", key_file(root / "keys")
    generate_landing(raw_db, root / "truth.duckdb", customers=CUSTOMERS)
    plant_landing(raw_db)
    env = {
        "CDP_MASTER_KEY_FILE": str(key),
        "CDP_RAW_DB": str(raw_db),
        "CDP_WAREHOUSE_DB": str(root / "warehouse.duckdb"),
        "CDP_VAULT_DB": str(root / "vault.duckdb"),
        "CDP_EVIDENCE_DIR": str(root / "evidence"),
        "CDP_PUBLISHED_DIR": str(root / "published"),
        "CDP_QUALITY_REPORT_DIR": str(root / "quality"),
    }
    for args in (
        ["seed", "--vars", VARS],
        ["run", "--vars", VARS, "--select", *spark_stage.PORTED_MODELS],
    ):
        result = run_dbt(args, env, root / "duckdb")
        assert result.success, result.output[-4000:]
    started = time.monotonic()
    workdir = root / "spark"
    done = run_spark_stage(
        workdir, raw_db, key, "--dump", str(root / "dump"), "--audit", str(workdir / "audit")
    )
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-6000:])
    return Builds(
        root, raw_db, root / "warehouse.duckdb", root / "dump", key, time.monotonic() - started
    )
