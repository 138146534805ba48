"""A NULL where a not_null constraint forbids one fails `dbt build` (decision 66).

The models with an enforced contract (the BI marts, the profile, the audiences) carry their
not_null checks as contract constraints, not as data tests: dbt-duckdb creates the table with
`NOT NULL` columns and inserts the model's rows, so DuckDB refuses a NULL while the model is
built, and the table the last build left stays in place. The attack: in a copy of the project,
`fct_profile_events` loses the person of one person's events (`person_key` NULL). Against a
weak configuration (the same project without the constraint, and so with no not_null check at
all) the model is built and the NULLs land in the warehouse (a later test may report them; it
does not keep them out); against the product the build fails on that model, naming the column,
and the warehouse keeps the previous build's rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cdp import stages
from conftest import Workspace, copy_workspace, query
from test_new_table import copy_project

pytestmark = pytest.mark.dbt

MODEL = "fct_profile_events"
RELATION = f"marts.{MODEL}"
MODEL_SQL = Path("models") / "marts" / "profile" / f"{MODEL}.sql"
MODEL_YML = Path("models") / "marts" / "profile" / "_profile__models.yml"
# The planted defect: the events of the person with the smallest key lose their person.
# (The cast's type is the text_type() macro since decision 78: varchar on DuckDB.)
KEPT = "cast(person_key as {{ text_type() }}) as person_key,"
PLANTED = (
    "cast(nullif(person_key, (select min(person_key) from consented_events))"
    " as {{ text_type() }}) as person_key,"
)
CONSTRAINED = """\
      - name: person_key
        data_type: varchar
        description: "{{ doc('consent_person_key') }}"
        config: {meta: {pii: direct, transformation: pseudonymised}}
        constraints: [{type: not_null}]
"""


def planted_project(root: Path, *, constrained: bool) -> Path:
    """A copy of the project whose fct_profile_events writes NULL person keys; without the
    column's not_null constraint when ``constrained`` is false (the weak configuration)."""
    project = copy_project(root)
    sql = project / MODEL_SQL
    text = sql.read_text(encoding="utf-8")
    assert KEPT in text, f"{MODEL_SQL} no longer selects person_key as this test plants it"
    sql.write_text(text.replace(KEPT, PLANTED), encoding="utf-8")
    if not constrained:
        yml = project / MODEL_YML
        text = yml.read_text(encoding="utf-8")
        assert text.count(CONSTRAINED) >= 1, f"{MODEL_YML}: person_key is no longer constrained"
        weak = CONSTRAINED.replace("        constraints: [{type: not_null}]\n", "")
        yml.write_text(text.replace(CONSTRAINED, weak, 1), encoding="utf-8")
    return project


@dataclass
class Outcome:
    workspace: Workspace
    success: bool
    output: str
    rows_before: int


def rebuild(built: Workspace, root: Path, *, constrained: bool) -> Outcome:
    """`cdp build --select fct_profile_events` of the planted project on a copy of the session
    build (the hash scan left out: it is the other test's subject and costs a full scan)."""
    project = planted_project(root / "project", constrained=constrained)
    ws = copy_workspace(built, root / "workspace")
    rows_before = query(ws.warehouse_db, f"select count(*) from {RELATION}")[0][0]
    result = ws.dbt(
        "build",
        "--select",
        MODEL,
        "--exclude",
        stages.HASH_SCAN,
        env={"DBT_PROJECT_DIR": str(project)},
    )
    return Outcome(ws, result.success, result.output, int(rows_before))


@pytest.fixture(scope="module")
def weak(built: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outcome]:
    yield rebuild(built, tmp_path_factory.mktemp("constraint_weak"), constrained=False)


@pytest.fixture(scope="module")
def product(built: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outcome]:
    yield rebuild(built, tmp_path_factory.mktemp("constraint_product"), constrained=True)


def null_person_rows(ws: Workspace) -> int:
    return int(
        query(ws.warehouse_db, f"select count(*) from {RELATION} where person_key is null")[0][0]
    )


def model_status(ws: Workspace) -> str:
    """The model's status in the analytics stage's run_results.json."""
    results = json.loads((ws.root / "target" / "run_results.json").read_text(encoding="utf-8"))
    (status,) = [r["status"] for r in results["results"] if r["unique_id"] == f"model.cdp.{MODEL}"]
    return str(status)


def test_without_the_constraint_the_planted_nulls_reach_the_warehouse(weak: Outcome) -> None:
    # The model is built and its NULLs are written (its consent test then fails on them:
    # a test reports a bad table, it does not keep one out of the warehouse).
    assert model_status(weak.workspace) == "success", weak.output[-3000:]
    assert null_person_rows(weak.workspace) > 0


def test_the_constraint_fails_the_build_and_names_the_column(product: Outcome) -> None:
    assert not product.success
    assert model_status(product.workspace) == "error"
    failed = [
        line
        for line in product.output.splitlines()
        if "NOT NULL constraint failed" in line and "person_key" in line
    ]
    assert failed, product.output[-3000:]
    assert MODEL in failed[0], failed[0]


def test_the_failed_build_leaves_the_previous_table(product: Outcome) -> None:
    rows = query(product.workspace.warehouse_db, f"select count(*) from {RELATION}")[0][0]
    assert rows == product.rows_before > 0
    assert null_person_rows(product.workspace) == 0
