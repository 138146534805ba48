"""One not_null test per model (decision 79), proved by attack on a copy of the session build.

Every not_null check of a model, seed or view is one ``not_null_columns`` test listing its
columns (tests/generic/test_not_null_columns.sql): one scan of the model, one row per column
that holds NULL, naming the column and how many rows hold NULL there. The attack: a NULL
planted in ``is_permitted`` of ``int_consent__person_purposes``, the last of the three columns
its test lists and a column no other test guards. The product's test passes before the plant
and fails after it, its failure rows naming that column alone with the planted count; a
planted weak version of the test (it reads only the first column of its list, as a test that
stopped at its first column would) passes the same plant. In the weak copy of the project a
per-column ``not_null`` test is planted too, and the project rule that forbids them
(test_project_rules) names it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pytest

from conftest import Workspace, copy_workspace, query, write
from test_new_table import copy_project
from test_project_rules import not_null_offenders

pytestmark = pytest.mark.dbt

MODEL: Final = "int_consent__person_purposes"
RELATION: Final = f"intermediate.{MODEL}"
LISTED: Final = ("person_key", "purpose_code", "is_permitted")
COLUMN: Final = "is_permitted"
SELECTION: Final = f"{MODEL},test_name:not_null_columns"
TEST_SQL: Final = Path("tests") / "generic" / "test_not_null_columns.sql"
MODELS_YML: Final = Path("models") / "intermediate" / "consent" / "_int_consent__models.yml"
# The weak version: the loop over the listed columns stops after the first one.
EVERY_COLUMN: Final = "{%- for column_name in column_names -%}"
FIRST_COLUMN: Final = "{%- for column_name in column_names[:1] -%}"
# The regression the rule forbids: a per-column not_null test (on the first as_of column).
AS_OF_COLUMN: Final = "      - name: as_of\n"
PER_COLUMN: Final = AS_OF_COLUMN + "        data_tests: [not_null]\n"


@dataclass
class Outcome:
    workspace: Workspace
    success: bool
    output: str


@dataclass
class Attack:
    clean: Outcome
    product: Outcome
    weak: Outcome
    planted_rows: int


def failure_rows(ws: Workspace) -> list[tuple[Any, ...]]:
    """The rows the model's not_null_columns test returns, from its SQL as dbt compiled it (the
    file is named by the test's alias, which dbt shortens with a hash when the name is long)."""
    (sql,) = [
        text
        for path in (ws.root / "target" / "compiled").rglob("not_null_columns_*.sql")
        if f'"{MODEL}"' in (text := path.read_text(encoding="utf-8"))
    ]
    return query(ws.warehouse_db, sql)


def weak_project(root: Path) -> Path:
    """A copy of the project whose not_null_columns test reads only the first listed column,
    and whose model carries a per-column not_null test as well (the rule's plant)."""
    project = copy_project(root)
    sql = project / TEST_SQL
    text = sql.read_text(encoding="utf-8")
    assert text.count(EVERY_COLUMN) == 1, f"{TEST_SQL} no longer loops over its columns as planted"
    sql.write_text(text.replace(EVERY_COLUMN, FIRST_COLUMN), encoding="utf-8")
    yml = project / MODELS_YML
    text = yml.read_text(encoding="utf-8")
    assert AS_OF_COLUMN in text, f"{MODELS_YML}: no as_of column to plant a per-column test on"
    yml.write_text(text.replace(AS_OF_COLUMN, PER_COLUMN, 1), encoding="utf-8")
    return project


@pytest.fixture(scope="module")
def attack(built: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Attack]:
    root = tmp_path_factory.mktemp("not_null_columns")
    ws = copy_workspace(built, root / "product")
    clean = ws.dbt("test", "--select", SELECTION)
    # One person's rows lose their verdict: NULL in the last listed column only.
    write(
        ws.warehouse_db,
        f"update {RELATION} set {COLUMN} = null "
        f"where person_key = (select min(person_key) from {RELATION})",
    )
    (planted,) = query(ws.warehouse_db, f"select count(*) from {RELATION} where {COLUMN} is null")
    product = ws.dbt("test", "--select", SELECTION)
    weak_ws = copy_workspace(ws, root / "weak")
    project = weak_project(root / "project")
    weak = weak_ws.dbt("test", "--select", SELECTION, env={"DBT_PROJECT_DIR": str(project)})
    yield Attack(
        clean=Outcome(ws, clean.success, clean.output),
        product=Outcome(ws, product.success, product.output),
        weak=Outcome(weak_ws, weak.success, weak.output),
        planted_rows=int(planted[0]),
    )


def test_the_plant_is_in_a_listed_column_after_the_first(attack: Attack) -> None:
    assert attack.planted_rows > 0
    assert COLUMN in LISTED[1:]
    rows = query(
        attack.product.workspace.warehouse_db,
        "select count(*) filter (where person_key is null), "
        "count(*) filter (where purpose_code is null) from " + RELATION,
    )
    assert rows == [(0, 0)], "the plant must leave the other listed columns whole"


def test_the_test_passes_on_the_build_and_fails_on_the_plant_naming_the_column(
    attack: Attack,
) -> None:
    assert attack.clean.success, attack.clean.output[-3000:]
    assert f"PASS not_null_columns_{MODEL}_" in attack.clean.output
    assert not attack.product.success
    assert f"FAIL 1 not_null_columns_{MODEL}_" in attack.product.output, attack.product.output[
        -3000:
    ]
    # The failure rows name the column and how many rows hold NULL there, and nothing else.
    assert failure_rows(attack.product.workspace) == [(COLUMN, attack.planted_rows)]


def test_a_test_that_reads_only_the_first_column_passes_the_plant(attack: Attack) -> None:
    assert attack.weak.success, attack.weak.output[-3000:]
    assert f"PASS not_null_columns_{MODEL}_" in attack.weak.output
    assert failure_rows(attack.weak.workspace) == []


def test_the_rule_names_a_per_column_not_null_test(attack: Attack) -> None:
    manifest = attack.weak.workspace.root / "target" / "manifest.json"
    nodes = json.loads(manifest.read_text(encoding="utf-8"))["nodes"]
    offenders = not_null_offenders(nodes.values())
    assert len(offenders) == 1, offenders
    ((name, why),) = offenders.items()
    assert name.startswith("not_null_") and name.endswith("_as_of"), name
    assert "per-column not_null" in why and ".as_of" in why, why
