"""scripts/bench_build.py: the benchmark's own logic, and one real run on a tiny landing zone.

The quick tests check what the page's figures are computed from (critical path, overlap, the
floor checks, the dirty-tree refusal, a partial page). The slow one (marker `bench`: `make
test-bench`, run by CI after `make test-spark`) runs the whole benchmark
at 200 customers (generation, staged builds, the heavy models alone, the floors through
`dbt run-operation`, the increment) and checks that its floors are what they claim to be:
a copy of the model's input with the keyed values its sources' metadata asks for, computed by
the plugin's functions, with no key material in any file it leaves.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import secrets
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import duckdb
import pytest

from cdp import sources
from conftest import ROOT, make_workspace
from test_key_isolation import key_markers, scan


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "bench_build", ROOT / "scripts" / "bench_build.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_build"] = module
    spec.loader.exec_module(module)
    return module


bench = _load_script()


# --------------------------------------------------------------------------- quick


def test_critical_path_is_the_longest_chain() -> None:
    seconds = {"a": 3.0, "b": 1.0, "c": 4.0, "d": 1.0, "e": 5.0}
    parents = {"b": ["a"], "c": ["a"], "d": ["b", "c", "outside"], "e": []}
    total, chain = bench.critical_path(seconds, parents)
    assert total == pytest.approx(8.0)  # a, c, d; not e alone (5), not the sum (14)
    assert chain == ["a", "c", "d"]
    # An edge back into the chain (a test that reads a child) is ignored, not followed forever.
    total, _ = bench.critical_path(seconds, {**parents, "a": ["d"]})
    assert total == pytest.approx(8.0)


def test_overlap_counts_each_second_shared_once() -> None:
    intervals = {"a": (0.0, 10.0), "b": (5.0, 15.0), "c": (20.0, 25.0), "d": (6.0, 8.0)}
    shared = bench.overlapped_seconds(intervals)
    assert shared == pytest.approx({"a": 5.0, "b": 5.0, "c": 0.0, "d": 2.0})


def test_a_model_waits_for_the_tests_of_its_parents() -> None:
    def node(kind: str, *parents: str) -> dict[str, Any]:
        return {"resource_type": kind, "depends_on": {"nodes": list(parents)}}

    manifest = {
        "nodes": {
            "m1": node("model"),
            "t1": node("test", "m1"),
            "m2": node("model", "m1"),
            "t2": node("test", "m1", "m2"),  # a relationship test also reads m2
        }
    }
    parents = bench.build_parents(manifest)
    assert sorted(parents["m2"]) == ["m1", "t1"]
    assert sorted(parents["t2"]) == ["m1", "m2"]


def _heavy(alone: float, copy: float, keyed: float, **more: Any) -> dict[str, Any]:
    entry = {
        "model": "stg_x",
        "alone_seconds": alone,
        "input_rows": 100,
        "keyed_values": ["a", "b"],
        "copy_floor": {"seconds": copy, "rows": 100, "columns": 5},
        "keyed_floor": {"seconds": keyed, "rows": 100, "columns": 7},
    }
    entry.update(more)
    return entry


def test_floor_checks() -> None:
    assert bench.floor_verdicts(_heavy(2.0, 0.5, 1.0)) == []
    above = bench.floor_verdicts(_heavy(0.8, 0.5, 1.0))
    assert len(above) == 1 and above[0].startswith("keyed floor 1.00 s is above the model")
    assert bench.floor_verdicts(_heavy(2.0, 0.5, 1.0, input_rows=99))  # not a copy
    short = _heavy(2.0, 0.5, 1.0)
    short["keyed_floor"]["columns"] = 6  # a keyed value missing from the floor
    assert bench.floor_verdicts(short) == ["keyed floor lacks a keyed column"]


def _node(name: str, materialized: str, parents: list[str]) -> dict[str, Any]:
    relation = None if materialized == "ephemeral" else f'"w"."s"."{name}"'
    return {
        "name": name,
        "resource_type": "model",
        "relation_name": relation,
        "config": {"materialized": materialized},
        "depends_on": {"nodes": [f"model.cdp.{p}" for p in parents]},
        "tags": ["analytics"],
    }


def test_an_ephemeral_parent_passes_its_inputs_on_to_the_floor() -> None:
    """fct_profile_events' events come through an ephemeral model: the floor copies the largest
    relation behind it, not the largest of the model's other (small) parents."""
    nodes = [
        _node("web", "view", []),
        _node("orders", "view", []),
        _node("ledger", "table", []),
        _node("inner_events", "ephemeral", ["orders"]),
        _node("events", "ephemeral", ["web", "inner_events"]),
        _node("profile", "table", ["events", "ledger"]),
    ]
    manifest = {"nodes": {f"model.cdp.{n['name']}": n for n in nodes}, "sources": {}}
    counts = {'"w"."s"."web"': 3_000, '"w"."s"."orders"': 500, '"w"."s"."ledger"': 800}
    found = bench.input_relations(manifest["nodes"]["model.cdp.profile"], manifest)
    assert sorted((p["name"], through) for p, through in found) == [
        ("ledger", ()),
        ("orders", ("events", "inner_events")),
        ("web", ("events",)),
    ]
    [plan] = bench.plan_floors(["profile"], manifest, counts, {"profile": "select 1"})
    assert plan["input"] == "web (through events)"
    assert plan["input_rows"] == 3_000
    assert plan["copy"] == 'select * from "w"."s"."web"'
    # the largest input unreadable (None): the next one, named with its own path
    [plan] = bench.plan_floors(
        ["profile"], manifest, {**counts, '"w"."s"."web"': None}, {"profile": "select 1"}
    )
    assert plan["input"] == "ledger" and plan["input_rows"] == 800


def test_the_keyed_values_are_the_sources_metadata() -> None:
    web = sources.table("web.events")
    assert [k.label for k in bench.landing_keyed_values(web)] == [
        "event_id",
        "anonymous_id",
        "customer_id",
    ]
    for table in sources.landing_tables():
        labels = {k.label for k in bench.landing_keyed_values(table)}
        wanted = {c.name for c in table.columns if c.raw_key or c.is_identifier}
        assert labels == wanted, table.qualified


def test_a_dirty_tree_is_named_and_refused_for_docs(tmp_path: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "a.txt").write_text("a")
    git("add", "a.txt")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "a")
    commit, changed = bench.git_state(tmp_path)
    assert len(commit) == 12 and changed == []
    (tmp_path / "a.txt").write_text("b")
    (tmp_path / "new.txt").write_text("c")
    _, changed = bench.git_state(tmp_path)
    assert sorted(changed) == ["a.txt", "new.txt"]
    assert "a.txt" in bench.dirty_refusal(changed, bench.DOCS, allow_dirty=False)
    assert bench.dirty_refusal(changed, bench.DOCS, allow_dirty=True) is None
    assert bench.dirty_refusal(changed, tmp_path, allow_dirty=False) is None
    assert bench.dirty_refusal([], bench.DOCS, allow_dirty=False) is None


def _build(seconds: float) -> dict[str, Any]:
    return {
        "seconds": seconds,
        "peak_mb": 500,
        "dbt_elapsed": seconds - 10,
        "node_seconds": seconds * 1.5,
        "nodes": 400,
        "critical_path": seconds / 2,
        "critical_path_nodes": 30,
        "critical_path_heaviest": [{"node": "stg_x", "seconds": 3.0}],
        "load_start": 1.0,
        "load_max": 2.5,
        "models": {
            "stg_x": {
                "seconds": 3.0,
                "overlapped": 1.5,
                "stage": "privacy",
                "materialized": "table",
            }
        },
    }


def test_a_failed_scale_leaves_a_partial_page_that_says_so() -> None:
    done = {
        "customers": 10_000,
        "commit": "abc",
        "raw_rows": 1000,
        "generate_seconds": 1.0,
        "parse_seconds": 8.0,
        "full": _build(60.0),
        "increment_raw_rows": 10,
        "incremental": _build(20.0),
        "heavy": [
            {
                **_heavy(0.8, 0.5, 1.0, problems=["keyed floor 1.00 s is above the model"]),
                "node_seconds": 1.2,
                "overlapped": 0.6,
                "rows": 100,
                "input": "x.y",
            }
        ],
    }
    failed = {"customers": 100_000, "commit": "def", "step": "full build", "failed": "exit 1"}
    page = bench.render({"scales": {"10000": done, "100000": failed}, "machine": bench.machine()})
    assert "**100,000 customers: FAILED at step full build**, this page is partial" in page
    assert "different commits" in page
    assert "| stg_x | x.y | 100 | 1.20 s (50% overlapped) | 0.80 s |" in page
    assert "0.8x !" in page and "- stg_x: keyed floor 1.00 s is above the model" in page

    # A scale whose full build was measured and whose increment failed still has its full-build
    # goals checked, and the increment's goal is missed, saying why (not left out).
    big = {**done, "customers": bench.GOAL_CUSTOMERS, "full": _build(900.0)}
    big |= {"step": "incremental build", "failed": "exit 1 | Out of Memory Error"}
    del big["incremental"]
    page = bench.render({"scales": {"1000000": big}, "machine": bench.machine()})
    assert "| 1M: full build <= 5 minutes | 900 s | no |" in page
    assert (
        "| 1M: peak memory <= 8 GiB | 0.49 GiB (full build; no increment measured) | no |" in page
    )
    assert "| 1M: 1% incremental <= 10% of the full build | failed | no |" in page
    assert "**1,000,000 customers: FAILED at step incremental build**" in page


@pytest.mark.parametrize(
    ("line", "published"),
    [
        (  # DuckDB's memory messages are sizes only: kept whole
            "Out of Memory Error: failed to pin block of size 256.0 KiB (5.5 GiB/5.5 GiB used)",
            "Out of Memory Error: failed to pin block of size 256.0 KiB (5.5 GiB/5.5 GiB used)",
        ),
        (
            "Conversion Error: Could not convert string 'alice@example.com' to INT32",
            f"Conversion Error: {bench.WITHHELD}",
        ),
        (  # a JSON error quotes its input unquoted
            'Invalid Input Error: Malformed JSON at byte 2 of input: {"email": bob@mail.ru',
            f"Invalid Input Error: {bench.WITHHELD}",
        ),
        (  # a memory message with a value after it is not a memory message
            "Out of Memory Error: failed to pin block of size 1 KiB (1 GiB/1 GiB used) +79161234567",
            f"Out of Memory Error: {bench.WITHHELD}",
        ),
        (
            "Database Error in model int_identity_records_resolved "
            "(models/intermediate/identity/int_identity_records_resolved.sql)",
            "Database Error in model int_identity_records_resolved "
            "(models/intermediate/identity/int_identity_records_resolved.sql)",
        ),
        (
            "Compilation Error in model.cdp.int_consent__subject_persons, caused by compilation "
            "error in referenced ephemeral model model.cdp.x",
            "Compilation Error in model.cdp.int_consent__subject_persons ...",
        ),
        (
            "Done. PASS=146 WARN=2 ERROR=2 SKIP=6 NO-OP=0 TOTAL=156",
            "Done. PASS=146 WARN=2 ERROR=2 SKIP=6 NO-OP=0 TOTAL=156",
        ),
        (
            "incremental build failed (exit 1): /x/python bench_build.py _dbt build --vars {}",
            "incremental build failed (exit 1) ...",
        ),
        ("  alice@example.com was not found", bench.WITHHELD),
    ],
)
def test_a_failure_is_published_without_the_values_a_message_can_quote(
    line: str, published: str
) -> None:
    """The page and its JSON are committed: what a failure says there keeps the project's
    names, DuckDB's error class and memory sizes, never the rest of a DuckDB message, which
    can quote a raw identifier in the privacy stage (the bench's own log keeps it all)."""
    assert bench.publishable_line(line) == published
    failure = bench.StepFailed(f"increment failed (exit 1): cmd\nnoise\n{line}")
    assert bench._published(failure) == " | ".join(
        ["increment failed (exit 1) ...", *([published] if "error" in line.lower() else [])]
    )
    assert line in bench._short(failure) or "error" not in line.lower()


def test_each_missed_goal_names_what_holds_it(tmp_path: Path) -> None:
    def build(
        seconds: float, node_seconds: float, tests: float, **models: tuple[float, str]
    ) -> dict[str, Any]:
        return {
            **_build(seconds),
            "node_seconds": node_seconds,
            "test_seconds": tests,
            "models": {
                name: {"seconds": s, "overlapped": 0.0, "stage": "analytics", "materialized": kind}
                for name, (s, kind) in models.items()
            },
        }

    full = build(900.0, 1500.0, 300.0, stg_web=(700.0, "incremental"), fct_profile=(400.0, "table"))
    increment = build(
        600.0,
        1000.0,
        320.0,
        stg_web=(30.0, "incremental"),
        fct_profile=(420.0, "table"),
        dim_profile=(200.0, "table"),
        v=(5.0, "view"),
    )
    keyed = {"seconds": 90.0, "rows": 10, "columns": 3}
    scale = {
        "customers": bench.GOAL_CUSTOMERS,
        "commit": "abc",
        "raw_rows": 1000,
        "generate_seconds": 1.0,
        "parse_seconds": 8.0,
        "full": full,
        "increment_raw_rows": 10,
        "incremental": increment,
        "heavy": [
            {
                **_heavy(400.0, 10.0, 90.0),
                "model": "stg_web",
                "keyed_values": ["event_id"],
                "keyed_floor": keyed,
            },
            {
                **_heavy(300.0, 10.0, 20.0),
                "model": "fct_profile",
                "keyed_values": [],
                "keyed_floor": {**keyed, "seconds": 20.0},
            },
        ],
    }
    split = bench.time_by_kind(increment)
    assert split == {
        "incremental": 30.0,
        "table": 620.0,
        "view": 5.0,
        "tests": 320.0,
        "other": 25.0,
    }
    page = bench.render({"scales": {"1000000": scale}, "machine": bench.machine()})
    where = page[page.index("## Where the time goes") :]
    assert (
        "| 1,000,000 | incremental | 600 s | 10.0 s | 1,000 s | 30.0 s | 620 s | 5.0 s | 320 s | 25.0 s |"
        in where
    )
    # the full build: its slowest nodes and the keyed floors of the models that compute keyed values
    assert "full build 900 s against 300 s" in where
    assert "Slowest: stg_web 700 s (analytics, incremental), fct_profile 400 s" in where
    assert "the keyed floors of the 1 heavy model that computes keyed values sum to 90.0 s" in where
    # the increment: what it rebuilds whole, slowest first
    assert "the 1% increment takes 600 s, 67% of the full build" in where
    assert "table models 620 s (rebuilt whole)" in where
    assert "each rebuilt whole: fct_profile 420 s (analytics, table), dim_profile 200 s" in where
    # over 3x its floor (stg_web is 4.4x, fct_profile 15x: a copy floor, it computes no keyed value)
    assert "over 3x their keyed floor: fct_profile 15.0x" in where and "stg_web 4.4x" in where
    assert "a copy: it computes no keyed value" in where

    # Met goals name nothing: a build within every goal has no such lines.
    fast = {
        **scale,
        "full": build(200.0, 300.0, 50.0, a=(10.0, "table")),
        "incremental": build(15.0, 20.0, 5.0, a=(1.0, "table")),
        "heavy": [],
    }
    page = bench.render({"scales": {"1000000": fast}, "machine": bench.machine()})
    assert "The goals missed" not in page

    # --render-only writes the page again from the JSON, measuring nothing
    (tmp_path / "performance.json").write_text(
        json.dumps({"scales": {"1000000": scale}, "machine": bench.machine()})
    )
    assert bench.main(["--render-only", "--out-dir", str(tmp_path)]) == 0
    assert "the 1% increment takes 600 s" in (tmp_path / "performance.md").read_text()
    assert bench.main(["--render-only", "--out-dir", str(tmp_path / "none")]) == 2


def test_the_slowest_models_alone_are_profiled_and_only_the_named_fields_kept() -> None:
    alone = {"stg_web": 140.0, "fct_profile": 74.0, "vault_ids": 78.0, "dim": 16.0, "gone": 99.0}
    alone |= {"stg_crm": 20.0}
    targets = {"stg_web": "privacy", "fct_profile": "local", "vault_ids": "vault", "dim": "local"}
    targets |= {"stg_crm": "privacy"}
    compiled = {"stg_web": "select 1", "fct_profile": "select 2", "vault_ids": "select 3"}
    compiled |= {"dim": "select 4", "stg_crm": "select 5"}
    # the slowest alone of each stage, on its target ("gone" has no target: not a heavy model)
    assert bench.plan_profiles(alone, targets, compiled) == {
        "privacy": [{"name": "stg_web", "select": "select 1"}],
        "vault": [{"name": "vault_ids", "select": "select 3"}],
        "local": [{"name": "fct_profile", "select": "select 2"}],
    }
    # a model without compiled SQL or a time alone gives its place to the next of its stage
    del alone["fct_profile"]
    assert bench.plan_profiles(alone, targets, {**compiled, "stg_web": ""}) == {
        "privacy": [{"name": "stg_crm", "select": "select 5"}],
        "vault": [{"name": "vault_ids", "select": "select 3"}],
        "local": [{"name": "dim", "select": "select 4"}],
    }

    join = {"depth": 2, "type": "HASH_JOIN", "join": "INNER", "table": "", "rows": 35_402_388}
    join |= {"conditions": "subject_key = subject_key", "seconds": 35.7}
    scan = {"depth": 3, "type": "TABLE_SCAN", "join": "", "conditions": "", "rows": 5_129_315}
    scan |= {"table": "warehouse.intermediate.int_consent__subject_persons", "seconds": 2.4}
    # a field the macro never keeps (a filter DuckDB derives from the data) is dropped here too
    leaky = {**scan, "Filters": "email <= 'someone@example.com'", "extra_info": {"x": 1}}
    summary = bench.profile_summary(
        {"name": "fct_profile", "seconds": 79.23, "operators": [leaky, join]}, 74.0
    )
    assert summary["operators"] == [scan, join] and summary["operator_seconds"] == 38.1
    assert summary["seconds"] == 79.23 and summary["alone_seconds"] == 74.0

    full = {**_build(900.0), "node_seconds": 1500.0, "test_seconds": 300.0}
    full["models"] = {"fct_profile": {"seconds": 130.0, "overlapped": 0.0}}
    full["models"]["fct_profile"] |= {"stage": "analytics", "materialized": "table"}
    scale = {"customers": bench.GOAL_CUSTOMERS, "commit": "abc", "raw_rows": 1000}
    scale |= {"generate_seconds": 1.0, "parse_seconds": 8.0, "full": full}
    scale |= {"profiles": [summary]}
    page = bench.render({"scales": {"1000000": scale}, "machine": bench.machine()})
    assert "Profiled below, alone: fct_profile." in page
    section = page[page.index("## Profiles of the slowest heavy models") :]
    assert "**1,000,000 customers, fct_profile**: 79.2 s under `explain analyze`" in section
    rows = [line for line in section.splitlines() if line.startswith("| HASH_JOIN")]
    assert rows == ["| HASH_JOIN INNER: `subject_key = subject_key` | 35,402,388 | 35.70 | 94% |"]
    assert "| TABLE_SCAN: `warehouse.intermediate.int_consent__subject_persons` |" in section
    assert "someone@example.com" not in page


def test_the_spark_section_names_each_table_whose_rows_differ() -> None:
    spark = {
        **_build(600.0),
        "peak_mb": 3072,
        "tests": 0,
        "load_seconds": 90.0,
        "tables": 3,
        "tables_equal_rows": 1,
        "row_differences": {
            "staging.stg_x": {"spark": 99, "duckdb": 100},
            "raw_audit.consent_scopes": {"spark": 0, "duckdb": None, "provided": True},
        },
    }
    scale = {
        "customers": 100_000,
        "commit": "abc",
        "raw_rows": 1000,
        "generate_seconds": 1.0,
        "parse_seconds": 8.0,
        "full": {**_build(150.0), "tests": 250},
        "spark": spark,
    }
    failed = {**scale, "customers": 10_000, "spark": {"failed": "exit 1"}}
    page = bench.render({"scales": {"100000": scale, "10000": failed}, "machine": bench.machine()})
    assert "## Apache Spark beside DuckDB (issue 19)" in page
    row = (
        "| 100,000 | 1,000 | 90.0 s | 590 s | 600 s | 3.00 GiB | 0 (250) | 150 s | 4.0x | 1 of 3 |"
    )
    assert row in page
    assert "- 100,000 customers, staging.stg_x: 99 rows on Spark, 100 on DuckDB" in page
    assert (
        "raw_audit.consent_scopes: 0 rows on Spark, no such DuckDB relation (a table cdp "
        "spark-build provides, empty, when the landing zone has none)"
    ) in page
    assert "- 10,000 customers: the Spark build FAILED: exit 1" in page
    assert "| stg_x | privacy | 3.0 | 3.0 | 1x |" in page

    # A Spark run kept beside the DuckDB build it was measured with (the scale's DuckDB figures
    # measured again later, without Spark) is compared with that build, and the page says so.
    beside = {
        "commit": "old",
        "seconds": 300.0,
        "tests": 240,
        "models": {"stg_x": {"seconds": 1.5}},
    }
    again = {**scale, "spark": {**spark, "beside": beside}}
    page = bench.render({"scales": {"100000": again}, "machine": bench.machine()})
    assert "| 3.00 GiB | 0 (240) | 300 s | 2.0x | 1 of 3 |" in page
    assert "| stg_x | privacy | 3.0 | 1.5 | 2x |" in page
    assert "Spark was measured at old, beside that commit's DuckDB full build (300 s)" in page
    assert "measured again at abc without Spark" in page

    # The bench keeps it so by itself: a scale measured again without Spark keeps the Spark
    # run of its previous entry, beside that entry's DuckDB full build.
    kept = bench.spark_kept(scale)
    assert kept is not None
    assert kept["beside"] == {
        "commit": "abc",
        "seconds": 150.0,
        "tests": 250,
        "models": _build(150.0)["models"],
    }
    assert kept["seconds"] == 600.0
    newer = {**scale, "commit": "def", "full": {**_build(100.0), "tests": 260}, "spark": kept}
    page = bench.render({"scales": {"100000": newer}, "machine": bench.machine()})
    assert "| 3.00 GiB | 0 (250) | 150 s | 4.0x | 1 of 3 |" in page
    assert "measured again at def without Spark" in page
    assert bench.spark_kept(newer) == kept  # kept again: still beside abc's build, not def's
    # put back once the new measurement has a full build, and not over a Spark run of its own
    failed_early = {"customers": 100_000, "commit": "def", "failed": "generate batch 1 failed"}
    bench.keep_spark(failed_early, kept)
    assert "spark" not in failed_early
    bench.render({"scales": {"100000": failed_early}, "machine": bench.machine()})
    measured = {"customers": 100_000, "commit": "def", "raw_rows": 1000, "full": _build(100.0)}
    bench.keep_spark(measured, kept)
    assert measured["spark"] is kept
    own = {**measured, "spark": {"failed": "exit 1"}}
    bench.keep_spark(own, kept)
    assert own["spark"] == {"failed": "exit 1"}
    assert bench.spark_kept(failed) is None
    assert bench.spark_kept({**scale, "spark": None}) is None
    assert bench.spark_kept(None) is None


def test_the_spark_tables_are_counted_from_their_parquet_files(tmp_path: Path) -> None:
    warehouse = tmp_path / "spark-warehouse"
    for name, rows in (("staging.db/stg_x", 3), ("staging.db/empty", 0), ("vault.db/v", 2)):
        folder = warehouse / name
        folder.mkdir(parents=True)
        if rows:  # two files, as Spark writes one per task
            for part in ("part-0", "part-1"):
                duckdb.execute(
                    f"copy (select * from range({rows})) to '{folder / part}.snappy.parquet' "
                    "(format parquet)"
                )
        (folder / "_SUCCESS").touch()
    counts = bench.spark_table_rows(warehouse)
    assert counts == {"staging.stg_x": 6, "staging.empty": 0, "vault.v": 4}


def test_the_tree_peak_sees_a_child_the_command_never_waits_for() -> None:
    """A Spark build's JVM is started by the driver and never waited for: RUSAGE_CHILDREN misses
    it, the sampled process tree does not."""
    # the parent waits for the child's "ready" (its 400 MB allocated: under load a Python start
    # alone can take seconds), then lives 3 s more, sampled each second
    child = "b = bytearray(400 * 2**20); print('ready', flush=True); import time; time.sleep(5)"
    parent = (
        "import subprocess, sys, time; "
        f"p = subprocess.Popen([sys.executable, '-c', {child!r}], stdout=subprocess.PIPE); "
        "p.stdout.readline(); time.sleep(3)"
    )
    step = bench.measured([sys.executable, "-c", parent], os.environ, "tree", tree=True)
    assert step.tree_peak_mb >= 400
    assert step.peak_mb < 400  # what the wrapper's RUSAGE_CHILDREN reports: the parent only
    assert math.isnan(bench.measured([sys.executable, "-c", "pass"], os.environ, "x").tree_peak_mb)


# --------------------------------------------------------------------------- slow: one real run


@pytest.mark.dbt
@pytest.mark.bench  # minutes of builds: make test-bench (CI), not make test
def test_the_benchmark_measures_true_floors_and_leaks_no_key(tmp_path: Path) -> None:
    workdir, out = tmp_path / "work", tmp_path / "out"
    key = secrets.token_urlsafe(48)
    env = {k: v for k, v in os.environ.items() if k != "CDP_MASTER_KEY_FILE"}
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "bench_build.py"),
            "--scales",
            "200",
            "--workdir",
            str(workdir),
            "--keep",
            "--out-dir",
            str(out),
            "--no-hmac",
            "--key-from-env",
        ],
        env={**env, "CDP_MASTER_KEY": key},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    scale = json.loads((out / "performance.json").read_text())["scales"]["200"]
    assert "failed" not in scale and "heavy_failed" not in scale, scale
    heavy = {m["model"]: m for m in scale["heavy"]}
    assert set(bench.HEAVY_MODELS) <= set(heavy)

    raw = workdir / "scale_200" / "raw.duckdb"
    for table in sources.landing_tables():
        model = heavy.get(table.staging_model)
        if model is None:
            continue
        # The floors ran on batch 1; batch 2 was appended afterwards.
        rows = (
            duckdb.connect(str(raw), read_only=True)
            .execute(f"select count(*) from {table.qualified} where _batch_id = 'batch_0001'")
            .fetchone()
        )
        copy, keyed = model["copy_floor"], model["keyed_floor"]
        # The copy floor copies the model's landing table, every row and column ...
        assert copy["rows"] == model["input_rows"] == (rows[0] if rows else None)
        assert copy["columns"] == len(table.columns)
        # ... and the keyed floor adds one pseudonym per raw key and identifier column.
        assert model["keyed_values"] == [k.label for k in bench.landing_keyed_values(table)]
        assert keyed["rows"] == copy["rows"]
        assert keyed["columns"] == copy["columns"] + len(model["keyed_values"])
    vault = heavy["vault_identifiers"]
    assert vault["keyed_floor"]["columns"] == vault["copy_floor"]["columns"] + 2
    for name, model in heavy.items():
        assert model["alone_seconds"] is not None, name
        assert model["problems"] == [], (name, model["problems"])

    full = scale["full"]
    slowest = max(m["seconds"] for m in full["models"].values())
    assert slowest <= full["critical_path"] <= full["node_seconds"]
    assert full["threads"] == [2] and scale["alone_run"]["seconds"] > 0
    # The increment runs at the user's threads too, and starts from the full build's
    # partial-parse state: the full build parsed every file, the increment none again.
    increment = scale["incremental"]
    assert increment["threads"] == [2]
    assert scale["incremental_partial_parse"] is True
    assert full["parse"]["parsed_files"] == full["parse"]["files"] > 0, full["parse"]
    assert increment["parse"]["parsed_files"] == 0, increment["parse"]
    assert 0 < increment["parse"]["seconds"] < full["parse"]["seconds"]
    settings = scale["floor_run"]["settings"]
    assert {s["threads"] for s in settings.values()} == {2}, settings

    # The slowest heavy model alone of each stage was built again under explain analyze, on its
    # stage's connection; of each plan only the named fields were kept, and no value of the
    # landing zone reached the page or its JSON.
    of_stage: dict[str, str] = {}
    for m in sorted(heavy.values(), key=lambda m: -m["alone_seconds"]):
        of_stage.setdefault(m["stage"], m["model"])
    assert sorted(p["model"] for p in scale["profiles"]) == sorted(of_stage.values())
    assert len(of_stage) == 3, of_stage  # the privacy stage's own connection (keys, lockdown) too
    for profile in scale["profiles"]:
        # DuckDB timed the operators (a tiny model's sum may round to 0.00 s on the page)
        assert profile["operators"], profile
        assert sum(op["seconds"] for op in profile["operators"]) > 0, profile
        assert {k for op in profile["operators"] for k in op} == set(bench.PROFILE_FIELDS)
        assert any(op["type"] == "CREATE_TABLE_AS" for op in profile["operators"]), profile
    landing = duckdb.connect(str(raw), read_only=True)
    try:
        emails = [r[0] for r in landing.execute("select email from crm.customers").fetchall()]
    finally:
        landing.close()
    published = (out / "performance.json").read_text() + (out / "performance.md").read_text()
    assert [e for e in emails if e and len(e) > 6 and e in published] == []

    page = (out / "performance.md").read_text()
    assert "## Profiles of the slowest heavy models" in page
    assert "## Heavy models against their floors (full build)" in page
    assert "| stg_web__events_triaged | web.events |" in page
    # the profile's events come through an ephemeral model: its floor copies the largest
    # relation behind that model (issue 18; it was the person ledger, a far smaller table)
    profile = heavy["fct_profile_events"]
    through = "stg_web__events (through int_consent__retained_person_events)"
    assert profile["input"] == through, profile

    warehouse = duckdb.connect(str(workdir / "scale_200" / "warehouse.duckdb"), read_only=True)
    try:
        schemas = {
            r[0] for r in warehouse.execute("select schema_name from duckdb_schemas()").fetchall()
        }
    finally:
        warehouse.close()
    assert bench.FLOOR_SCHEMA not in schemas

    workspace = make_workspace(tmp_path / "keys")
    workspace.key = key
    scanned, hits = scan([workdir, out], key_markers(workspace))
    assert scanned > 10 and hits == []
