"""Shared fixtures: one generated landing zone and one real dbt build per session.

dbt runs in-process (dbtRunner): a dbt process start costs seconds here. The
build writes only under a temporary folder (databases, target/, logs/), with
a random master key, so tests never touch a developer's data/ or demo key.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from cdp import paths, stages
from cdp.dbt_invoke import DbtOutcome

ROOT = paths.PROJECT_ROOT
GENERATOR = ROOT / "scripts" / "generate_landing.py"

# The small landing zone every dbt test builds on.
CUSTOMERS = 300
SEED = 20261129
REFERENCE_DATE = "2026-11-01"

os.environ["DO_NOT_TRACK"] = "1"
os.environ["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"


DbtResult = DbtOutcome


@dataclass
class Workspace:
    """Where one build lives, and how to run dbt against it."""

    root: Path
    key: str
    env: dict[str, str]

    @property
    def raw_db(self) -> Path:
        return Path(self.env["CDP_RAW_DB"])

    @property
    def warehouse_db(self) -> Path:
        return Path(self.env["CDP_WAREHOUSE_DB"])

    @property
    def vault_db(self) -> Path:
        return Path(self.env["CDP_VAULT_DB"])

    @property
    def truth_db(self) -> Path:
        return Path(self.env["CDP_TRUTH_DB"])

    def dbt(self, *args: str, env: dict[str, str] | None = None) -> DbtResult:
        return run_dbt(args, {**self.env, **(env or {})}, self.root)


def run_dbt(args: Sequence[str], env: dict[str, str], root: Path) -> DbtOutcome:
    """dbt in-process with ``env`` applied (and restored afterwards); every log line kept.

    Build-like commands run stage by stage as ``cdp build`` runs them (cdp.stages):
    privacy (with the key), analytics (without), vault.
    """
    saved = {name: os.environ.get(name) for name in env}
    # Key variables the caller did not set must not leak in from the outer environment.
    for name in ("CDP_MASTER_KEY", "CDP_MASTER_KEY_FILE"):
        saved.setdefault(name, os.environ.get(name))
        if name not in env:
            os.environ.pop(name, None)
    os.environ.update(env)
    extra: list[str] = []
    if args and args[0] != "debug":
        extra = ["--target-path", str(root / "target"), "--log-path", str(root / "logs")]
    try:
        return stages.run(args, extra=extra)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def generate_landing(
    raw_db: Path,
    truth_db: Path,
    *,
    customers: int = CUSTOMERS,
    seed: int = SEED,
    batch: int = 1,
    dirty_rate: float | None = None,
) -> None:
    """Write a synthetic landing zone with the project's generator (a real run of its CLI)."""
    command = [
        sys.executable,
        str(GENERATOR),
        "--customers",
        str(customers),
        "--seed",
        str(seed),
        "--reference-date",
        REFERENCE_DATE,
        "--batch",
        str(batch),
        "--raw-db",
        str(raw_db),
        "--truth-db",
        str(truth_db),
        "--quiet",
    ]
    if dirty_rate is not None:
        command += ["--dirty-rate", str(dirty_rate)]
    subprocess.run(command, check=True)


def make_workspace(root: Path) -> Workspace:
    root.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    env = {
        "CDP_MASTER_KEY": key,
        "CDP_RAW_DB": str(root / "raw.duckdb"),
        "CDP_WAREHOUSE_DB": str(root / "warehouse.duckdb"),
        "CDP_VAULT_DB": str(root / "vault.duckdb"),
        "CDP_TRUTH_DB": str(root / "truth.duckdb"),
    }
    return Workspace(root=root, key=key, env=env)


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """A landing zone generated and built once per session (``dbt build``)."""
    workspace = make_workspace(tmp_path_factory.mktemp("build"))
    generate_landing(workspace.raw_db, workspace.truth_db)
    result = workspace.dbt("build")
    if not result.success:
        pytest.fail("dbt build failed on the generated landing zone:\n" + result.output[-6000:])
    yield workspace
