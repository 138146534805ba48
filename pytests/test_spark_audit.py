"""Which models the Spark audit explains (cdp.spark_audit.keyed_models), on a small manifest.

Plain Python (no Spark, no dbt): the real build's set is checked against its compiled SQL in
test_spark_leaks.py; this pins the two ways a model reaches a keyed function that a build of
today's ported models does not show: through a macro that calls another macro, and through
an ephemeral model it inlines.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cdp import spark_audit


def _model(macros: list[str], refs: list[str], materialized: str) -> dict[str, Any]:
    return {
        "resource_type": "model",
        "config": {"materialized": materialized},
        "depends_on": {"macros": macros, "nodes": [f"model.cdp.{r}" for r in refs]},
    }


def test_keyed_models_follow_macros_and_ephemeral_models(tmp_path: Path) -> None:
    macros = {
        "macro.cdp.pseudonymise": {"depends_on": {"macros": []}},
        "macro.cdp.record_key": {"depends_on": {"macros": ["macro.cdp.pseudonymise"]}},
        "macro.cdp.normalise_email": {"depends_on": {"macros": []}},
    }
    nodes = {
        "model.cdp.direct": _model(["macro.cdp.pseudonymise"], [], "table"),
        "model.cdp.nested": _model(["macro.cdp.record_key"], [], "table"),
        "model.cdp.keyed_cte": _model(["macro.cdp.pseudonymise"], [], "ephemeral"),
        "model.cdp.inlines": _model([], ["keyed_cte"], "table"),
        "model.cdp.versioned": _model(["macro.cdp.key_version"], [], "table"),
        "model.cdp.reads_table": _model([], ["direct"], "table"),
        "model.cdp.plain": _model(["macro.cdp.normalise_email"], [], "table"),
        "model.cdp.not_run": _model(["macro.cdp.pseudonymise"], [], "table"),
        "test.cdp.a_test": {"resource_type": "test", "depends_on": {"macros": [], "nodes": []}},
    }
    ran = [n for n in nodes if n != "model.cdp.not_run" and n != "model.cdp.keyed_cte"]
    (tmp_path / "manifest.json").write_text(json.dumps({"macros": macros, "nodes": nodes}))
    results = [{"unique_id": n, "compiled_code": f"select 1 -- {n}"} for n in ran]
    (tmp_path / "run_results.json").write_text(json.dumps({"results": results}))
    found = spark_audit.keyed_models(tmp_path)
    assert set(found) == {
        "model.cdp.direct",
        "model.cdp.nested",
        "model.cdp.inlines",
        "model.cdp.versioned",
    }
    assert found["model.cdp.inlines"] == "select 1 -- model.cdp.inlines"


def test_the_recorder_knows_a_model_table_from_dbt_sparks_statement() -> None:
    """PlanRecorder explains the query of ``create table <model> ... as <query>`` as
    dbt-spark's spark__create_table_as renders it (the real build's statements are checked
    against each stage's compiled SQL by PlanRecorder.check, in test_spark_leaks.py); the
    identity iteration's one-line scratch tables and other statements are not models."""
    query = "with a as (\n    select 1 as x\n)\nselect x as y\nfrom a"
    comment = '/* {"app": "dbt", "node_id": "model.cdp.int_x"} */'
    dbt_spark = f"{comment}\n\n\n  \n    \n        create table intermediate.int_x\n      \n      \n    using parquet\n      \n      \n      \n      \n      \n      \n\n      as\n      {query}\n  "
    created = spark_audit.created_table(dbt_spark)
    assert created is not None
    assert created[0] == "intermediate.int_x" and created[1].strip() == query
    assert spark_audit.created_table(
        "create or replace table `Staging`.`T` using parquet\nas\nselect 1"
    ) == (
        "staging.t",
        "select 1",
    )
    scratch = "create table intermediate.int_identity_components__cc_a as select node_no, node_no as label from x"
    assert spark_audit.created_table(scratch) is None
    for other in (
        "drop table if exists staging.t",
        "select 1 as\nx",
        "insert into t\nas\nselect 1",
    ):
        assert spark_audit.created_table(other) is None


def test_keyed_relations_name_every_keyed_model_by_its_table(tmp_path: Path) -> None:
    macros: dict[str, Any] = {"macro.cdp.pseudonymise": {"depends_on": {"macros": []}}}
    nodes = {
        "model.cdp.direct": {
            **_model(["macro.cdp.pseudonymise"], [], "table"),
            "schema": "staging",
            "name": "direct",
        },
        "model.cdp.aliased": {
            **_model(["macro.cdp.pseudonymise"], [], "table"),
            "schema": "vault",
            "name": "aliased",
            "alias": "Vault_Table",
        },
        "model.cdp.plain": {**_model([], [], "table"), "schema": "staging", "name": "plain"},
    }
    (tmp_path / "manifest.json").write_text(json.dumps({"macros": macros, "nodes": nodes}))
    assert spark_audit.keyed_relations(tmp_path) == {
        "staging.direct": "model.cdp.direct",
        "vault.vault_table": "model.cdp.aliased",
    }
