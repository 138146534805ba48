"""The project's data tests run on Spark, the same ones as on DuckDB, and can fail there.

The Spark build (``cdp spark-build``, :func:`cdp.spark_stage.run_stages`) runs each stage as one
``dbt build`` of its models and their data tests (decision 87). On the shared build
(pytests/spark_build.py):

* the data tests each Spark stage ran (its ``run_results.json``) are the ones ``cdp`` runs on
  DuckDB for the same models and seeds, stage by stage, and all passed on both engines; the
  one named exception (:data:`cdp.spark_stage.DUCKDB_ONLY_TESTS`) passed on DuckDB;
* an attack: violations planted into the built Spark tables (a duplicate key, a profile event of
  a person without consent, an event past its retention window, a BI cell below k) make the
  corresponding Spark tests fail, in one ``dbt test`` over the planted tables; the tables
  restored, the same tests pass again.

The attack runs in its own JVM (this file run as a script: ``python test_spark_tests.py plant
<workdir> <target> <out.json>``) on the build's warehouse and metastore, after the build's JVM
has exited.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cdp import spark_stage, stages

pytestmark = [pytest.mark.spark, pytest.mark.dbt]

#: What the attack plants: (database, table) of each planted model.
PROFILE = ("marts", "fct_profile_events")
BI_MART = ("bi", "bi_sales_by_region_month")
#: The person key of the planted profile event: no consent, no person.
NO_CONSENT_PERSON = "planted-person-without-consent"
#: Past every retention window of the seed data_categories (as of 2026-11-01).
TOO_OLD = dt.datetime(1990, 1, 1)


def _stage_results(target: Path) -> dict[str, dict[str, str]]:
    """stage -> {data test name: status} from each stage's run_results.json under ``target``."""
    found: dict[str, dict[str, str]] = {}
    for stage in stages.STAGES:
        path = stages.stage_target_path(target, stage) / "run_results.json"
        if not path.exists():
            continue
        results = json.loads(path.read_text(encoding="utf-8"))["results"]
        found[stage.name] = {
            r["unique_id"].split(".")[2]: r["status"]
            for r in results
            if r["unique_id"].startswith("test.")
        }
    return found


@pytest.fixture(scope="module")
def duckdb_tests(spark_builds: Any) -> dict[str, dict[str, str]]:
    """The data tests ``cdp`` runs on DuckDB for the ported models and the seeds, stage by stage
    (cdp.stages: each stage's selector), over the shared DuckDB build; unit tests left out."""
    from conftest import UNIT_TESTS_EXCLUDED, run_dbt
    from spark_build import VARS, duckdb_env

    root = spark_builds.root
    env = {
        **duckdb_env(root, spark_builds.raw_db, spark_builds.key_file),
        UNIT_TESTS_EXCLUDED: "unit_test",
    }
    # the singular tests too: those that read no model are run by every build
    selection = ["--select", *spark_stage.PORTED_MODELS, "resource_type:seed", "test_type:singular"]
    outcome = run_dbt(["test", "--vars", VARS, *selection], env, root / "duckdb_tests")
    assert outcome.success, outcome.output[-4000:]
    return _stage_results(root / "duckdb_tests" / "target")


def test_spark_runs_the_data_tests_duckdb_runs(spark_builds: Any, duckdb_tests: Any) -> None:
    spark = _stage_results(spark_builds.spark_workdir / "target")
    duck = {
        stage: {name: status for name, status in tests.items()}
        for stage, tests in duckdb_tests.items()
    }
    # the named exceptions (spark_stage.DUCKDB_ONLY_TESTS): each ran, and passed, on DuckDB
    only_duckdb = {
        name: status
        for tests in duck.values()
        for name, status in tests.items()
        if name in spark_stage.DUCKDB_ONLY_TESTS
    }
    assert set(only_duckdb) == set(spark_stage.DUCKDB_ONLY_TESTS)
    assert all(status == "pass" for status in only_duckdb.values()), only_duckdb
    for tests in duck.values():
        for name in only_duckdb:
            tests.pop(name, None)
    assert {stage: set(tests) for stage, tests in spark.items()} == {
        stage: set(tests) for stage, tests in duck.items() if tests
    }
    # every kind of privacy test is among them, and every one passed on both engines
    ran = {name for tests in spark.values() for name in tests}
    for kind in (
        "consent_presence",
        "within_retention",
        "k_anonymity",
        "l_diversity",
        "no_recoverable_suppression",
        "accounts_for_every_raw_row",
        "not_null_columns",
        "unique_combination_of_columns",
        "relationships",
        "accepted_values",
    ):
        assert any(name.startswith(kind) for name in ran), kind
    assert len(ran) > 100, len(ran)
    # every one passed on both engines, or warned alike (severity warn: the same tests, the
    # same data, the same statuses)
    for engine in (spark, duck):
        failed = {
            n: s for tests in engine.values() for n, s in tests.items() if s not in ("pass", "warn")
        }
        assert not failed, failed
    assert {s: t for s, t in spark.items()} == {s: t for s, t in duck.items() if t}


def plant(workdir: Path, target_path: Path, out: Path) -> None:
    """In a session over the Spark build in ``workdir``: back the two tables up, plant the
    violations, run ``dbt test`` on their models, restore them, run it again; the two
    runs' results (data test -> (status, failures)) and the restored row counts to ``out``."""
    from pyspark.sql import functions as F

    from cdp import dbt_invoke, paths
    from spark_build import VARS

    spark = spark_stage.start_session(workdir, conf=spark_stage.workdir_settings(workdir))
    spark.sparkContext.setLogLevel("ERROR")
    report: dict[str, Any] = {}
    try:
        spark.sql("create database if not exists attack_backup")
        counts = {}
        for database, table in (PROFILE, BI_MART):
            spark.sql(
                f"create table attack_backup.{table} using parquet as "
                f"select * from {database}.{table}"
            )
            counts[table] = spark.table(f"attack_backup.{table}").count()
        profile = spark.table(f"attack_backup.{PROFILE[1]}")
        row = profile.orderBy("profile_event_id").limit(1)
        planted = (
            row.unionByName(  # a duplicate key: the same event twice
                row.withColumn("person_key", F.lit(NO_CONSENT_PERSON)).withColumn(
                    "profile_event_id", F.lit("planted:no-consent")
                )
            )
            .unionByName(
                row.withColumn("event_at", F.lit(TOO_OLD).cast("timestamp")).withColumn(
                    "profile_event_id", F.lit("planted:too-old")
                )
            )
            .select(*profile.columns)
        )
        planted.write.insertInto(".".join(PROFILE))
        mart = spark.table(f"attack_backup.{BI_MART[1]}")
        cell = (
            mart.where("not is_suppressed")
            .orderBy("order_month", "region")
            .limit(1)
            .withColumn("region", F.lit("(planted)"))
            .withColumn("customer_count", F.lit(1).cast(mart.schema["customer_count"].dataType))
            .select(*mart.columns)
        )
        cell.write.insertInto(".".join(BI_MART))

        def run_tests() -> tuple[dict[str, list[Any]], list[str]]:
            outcome = dbt_invoke.invoke(
                [
                    *("test", "--vars", VARS, "--select", PROFILE[1], BI_MART[1]),
                    *(
                        "--target",
                        spark_stage.ANALYTICS_TARGET,
                        "--exclude-resource-type",
                        "unit_test",
                    ),
                ],
                extra=["--target-path", str(target_path), "--log-path", str(target_path)],
                project_dir=str(paths.project_dir()),
            )
            results = {
                r.node.name: [str(getattr(r.status, "value", r.status)), r.failures]
                for r in getattr(outcome.result, "results", None) or []
            }
            # what cdp spark-build prints when a stage fails (run_stages)
            return results, [] if outcome.success else spark_stage.failed_tests(outcome)

        report["planted"], report["planted_named"] = run_tests()
        for database, table in (PROFILE, BI_MART):
            spark.sql(
                f"insert overwrite table {database}.{table} select * from attack_backup.{table}"
            )
        report["restored_counts"] = {
            table: spark.table(f"{database}.{table}").count()
            for database, table in (PROFILE, BI_MART)
        }
        report["backup_counts"] = counts
        report["restored"], report["restored_named"] = run_tests()
        spark.sql("drop database attack_backup cascade")
    finally:
        spark.stop()
    out.write_text(json.dumps(report), encoding="utf-8")


def test_planted_violations_fail_the_spark_tests(spark_builds: Any, tmp_path: Path) -> None:
    from spark_build import spark_env

    out = tmp_path / "attack.json"
    done = subprocess.run(
        [
            sys.executable,
            __file__,
            "plant",
            str(spark_builds.spark_workdir),
            str(tmp_path),
            str(out),
        ],
        capture_output=True,
        text=True,
        env=spark_env(spark_builds.key_file),
        timeout=1200,
        check=False,
    )
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-6000:])
    report = json.loads(out.read_text(encoding="utf-8"))
    planted: dict[str, list[Any]] = report["planted"]
    restored: dict[str, list[Any]] = report["restored"]
    assert set(planted) == set(restored) and len(planted) > 5, (planted, restored)

    def named(kind: str, model: str) -> str:
        (name,) = (n for n in planted if n.startswith(kind) and model in n)
        return str(name)

    expected = {
        named("unique_fct_profile_events_profile_event_id", PROFILE[1]): 1,  # one id twice
        named("consent_presence", PROFILE[1]): None,  # the two planted people (no consent then)
        named("within_retention", PROFILE[1]): 1,  # the one event of 1990
        named("k_anonymity", BI_MART[1]): 1,  # the one cell of one person
    }
    for name, failures in expected.items():
        status, found = planted[name]
        assert status == "fail", (name, planted[name])
        assert found == failures if failures is not None else found >= 1, (name, found)
    # the failure report of cdp spark-build names each of them
    assert {n.split(" ", 1)[0] for n in report["planted_named"]} >= set(expected)
    # the product's tables (restored, row for row as the build left them) pass the same tests
    assert report["restored_counts"] == report["backup_counts"]
    assert all(status == "pass" for status, _ in restored.values()), restored
    assert report["restored_named"] == []


if __name__ == "__main__" and sys.argv[1:2] == ["plant"]:
    sys.path.insert(0, str(Path(__file__).parent))
    plant(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
