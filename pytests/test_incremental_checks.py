"""An incremental build still tests every key, not only the keys it changed (decision 66).

Restricting a uniqueness test to the keys an incremental build changed looks free where the
property is local: the kept web events are unique by event_key, each triage group has one key
and at most one kept row, and an incremental run rewrites whole groups (the regroup strategy),
so a changed group cannot collide with an unchanged one. But the restricted test also assumes
that the unchanged groups were verified by an earlier build, and dbt does not give that: a
failing test does not roll its model back, so a violation a build reported stays in the table,
and the next incremental build, testing its changed keys only, passes over it.

The attack: on a copy of the session build, one re-delivered web event's `duplicate` row is
turned into a second `kept` row (a violation left in place by an earlier build; the batch's row
counts are unchanged, so its group is not triaged again); batch 2 lands and the web event
models are built incrementally. With the unique test restricted to batch 2's rows (the weak
configuration) the build passes; as the project tests it, the build fails on that key.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

from cdp import stages
from conftest import SEED, Workspace, copy_workspace, generate_landing, query, write
from test_new_table import copy_project

pytestmark = pytest.mark.dbt

TRIAGED: Final = "staging.stg_web__events_triaged"
KEPT_VIEW: Final = "stg_web__events"
MODELS_YML: Final = Path("models") / "staging" / "web" / "_web__models.yml"
# event_key's unique test (its not_null is in the view's not_null_columns test, decision 79).
TESTED: Final = "    data_tests:\n    - unique\n"
# The weak configuration: the unique test on the rows of the new batch only.
CHANGED_ONLY: Final = (
    "    data_tests:\n    - unique:\n        config:\n"
    "          where: \"_batch_id = 'batch_0002'\"\n"
)


@dataclass
class Outcome:
    workspace: Workspace
    success: bool
    output: str
    planted_key: str


def plant_a_second_kept_row(ws: Workspace) -> str:
    """Turn the duplicate row of one re-delivered batch-1 web event into a kept row."""
    rows = query(
        ws.warehouse_db,
        f"""
        select event_key from {TRIAGED}
        where _batch_id = 'batch_0001' and event_key is not null
        group by event_key
        having count(*) filter (where row_status = 'kept') = 1
            and count(*) filter (where row_status = 'duplicate') = 1
            and count(*) = 2
        order by event_key
        limit 1
        """,
    )
    assert rows, "the generator made no re-delivered web event in batch 1"
    key = str(rows[0][0])
    write(
        ws.warehouse_db,
        f"update {TRIAGED} set row_status = 'kept' where event_key = ? and row_status = 'duplicate'",
        [key],
    )
    return key


def incremental_build(built: Workspace, root: Path, *, changed_only: bool) -> Outcome:
    project = copy_project(root / "project")
    if changed_only:
        yml = project / MODELS_YML
        text = yml.read_text(encoding="utf-8")
        assert text.count(TESTED) == 1, f"{MODELS_YML}: the event_key tests moved"
        yml.write_text(text.replace(TESTED, CHANGED_ONLY), encoding="utf-8")
    ws = copy_workspace(built, root / "workspace")
    key = plant_a_second_kept_row(ws)
    generate_landing(ws.raw_db, ws.truth_db, customers=6, seed=SEED, batch=2)
    result = ws.dbt(
        "build",
        "--select",
        "stg_web__events_triaged",
        KEPT_VIEW,
        "--exclude",
        stages.HASH_SCAN,
        env={"DBT_PROJECT_DIR": str(project)},
    )
    return Outcome(ws, result.success, result.output, key)


@pytest.fixture(scope="module")
def weak(built: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outcome]:
    yield incremental_build(built, tmp_path_factory.mktemp("changed_only"), changed_only=True)


@pytest.fixture(scope="module")
def product(built: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outcome]:
    yield incremental_build(built, tmp_path_factory.mktemp("every_key"), changed_only=False)


def unique_test_results(ws: Workspace) -> list[tuple[str, int]]:
    """(status, failures) of the unique test on stg_web__events.event_key (privacy stage)."""
    path = ws.root / "target" / "privacy" / "run_results.json"
    results = json.loads(path.read_text(encoding="utf-8"))["results"]
    return [
        (str(r["status"]), int(r["failures"] or 0))
        for r in results
        if r["unique_id"].startswith(f"test.cdp.unique_{KEPT_VIEW}_event_key.")
    ]


def kept_rows(ws: Workspace, key: str) -> list[tuple[str, str]]:
    return [
        (str(status), str(batch))
        for status, batch in query(
            ws.warehouse_db,
            f"select row_status, _batch_id from {TRIAGED} where event_key = ? order by all",
            [key],
        )
    ]


def test_the_planted_group_is_not_triaged_again(product: Outcome, weak: Outcome) -> None:
    # The incremental run added batch 2 and left the planted group as it was: the violation
    # is in an unchanged group, the case a changed-keys test cannot see.
    for outcome in (product, weak):
        assert (
            query(
                outcome.workspace.warehouse_db,
                f"select count(*) from {TRIAGED} where _batch_id = 'batch_0002'",
            )[0][0]
            > 0
        )
        assert kept_rows(outcome.workspace, outcome.planted_key) == [
            ("kept", "batch_0001"),
            ("kept", "batch_0001"),
        ]


def test_a_test_of_the_changed_keys_only_passes_over_the_violation(weak: Outcome) -> None:
    assert unique_test_results(weak.workspace) == [("pass", 0)], weak.output[-3000:]
    assert weak.success, weak.output[-3000:]


def test_the_incremental_build_fails_on_the_violation(product: Outcome) -> None:
    assert unique_test_results(product.workspace) == [("fail", 1)], product.output[-3000:]
    assert not product.success
