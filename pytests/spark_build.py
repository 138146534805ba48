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

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

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


def make_builds(root: Path) -> Builds:
    """The landing zone, its DuckDB build and its audited Spark build, all under ``root``."""
    raw_db, key = root / "raw.duckdb", key_file(root / "keys")
    generate_landing(raw_db, root / "truth.duckdb", customers=CUSTOMERS)
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
