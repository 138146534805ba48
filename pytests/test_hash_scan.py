"""The scan for unkeyed hashes sees every model, on a fresh build and on a partial one (decision 61).

In a copy of the project, one new privacy-stage model stores the plain sha256 of every
customer's normalised e-mail (a dictionary attack reverses it). On a fresh build (no
warehouse, no vault) the scan ``assert_no_unkeyed_hash_of_identifiers`` must fail, naming
that one column, and every other node must pass; ``cdp build --select`` of that model alone
must run the scan too. Without the planted model the same fresh build passes it (the
session's build, ``built``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cdp import stages
from conftest import Workspace, copy_workspace
from test_new_table import copy_project

pytestmark = pytest.mark.dbt

PLANTED = "stg_crm__email_hashes"
PLANTED_MODEL = """\
{{ config(materialized='table') }}
-- A leak: the plain sha256 of each normalised e-mail, reversible by dictionary.
select sha256({{ normalise_email('email') }}) as email_hash
from {{ source('crm', 'customers') }}
where email is not null
"""


def scan_results(target: Path) -> list[dict[str, Any]]:
    """The scan's results in the vault stage's run_results.json of ``target``."""
    results = json.loads((target / "vault" / "run_results.json").read_text(encoding="utf-8"))
    return [r for r in results["results"] if r["unique_id"].endswith(f".{stages.HASH_SCAN}")]


def other_failures(target: Path) -> list[str]:
    failed = []
    for stage_dir in (target / "privacy", target, target / "vault"):
        results = json.loads((stage_dir / "run_results.json").read_text(encoding="utf-8"))
        failed += [
            r["unique_id"]
            for r in results["results"]
            if r["status"] in ("error", "fail", "skipped")
            and not r["unique_id"].endswith(f".{stages.HASH_SCAN}")
        ]
    return failed


@dataclass
class Planted:
    workspace: Workspace
    project: Path
    output: str
    success: bool


@pytest.fixture(scope="module")
def planted(built: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Planted]:
    root = tmp_path_factory.mktemp("hash_scan")
    project = copy_project(root / "project")
    (project / "models" / "staging" / "crm" / f"{PLANTED}.sql").write_text(
        PLANTED_MODEL, encoding="utf-8"
    )
    ws = copy_workspace(built, root / "workspace")
    ws.warehouse_db.unlink()  # a fresh build: no warehouse, no vault
    ws.vault_db.unlink()
    result = ws.dbt("build", env={"DBT_PROJECT_DIR": str(project)})
    yield Planted(ws, project, result.output, result.success)


def test_the_fresh_build_passes_the_scan_without_the_planted_model(built: Workspace) -> None:
    results = scan_results(built.root / "target")
    assert [(r["status"], r["failures"]) for r in results] == [("pass", 0)]


def test_a_planted_unkeyed_hash_fails_the_fresh_build(planted: Planted) -> None:
    assert not planted.success
    target = planted.workspace.root / "target"
    # The scan ran last and found exactly one column: the planted model's.
    assert [(r["status"], r["failures"]) for r in scan_results(target)] == [("fail", 1)]
    assert other_failures(target) == []
    assert f"{stages.HASH_SCAN}" in planted.output


def test_a_partial_build_of_the_planted_model_runs_the_scan(planted: Planted) -> None:
    ws = planted.workspace
    result = ws.dbt("build", "--select", PLANTED, env={"DBT_PROJECT_DIR": str(planted.project)})
    assert not result.success
    target = ws.root / "target"
    assert [(r["status"], r["failures"]) for r in scan_results(target)] == [("fail", 1)]
    privacy = json.loads((target / "privacy" / "run_results.json").read_text(encoding="utf-8"))
    assert [r["unique_id"].rsplit(".", 1)[-1] for r in privacy["results"]] == [PLANTED]
