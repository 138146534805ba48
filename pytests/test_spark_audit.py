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
