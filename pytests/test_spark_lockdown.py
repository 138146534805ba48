"""Key isolation on Spark: SQL in the privacy stage's JVM cannot read the key file.

The keyed functions read the master key from the owner-only file named by
``CDP_MASTER_KEY_FILE`` inside the JVM (decision 63), and the staging models, which analysts
write, run in that same JVM. Each attack below is SQL an analyst could put in a model, a
macro or ``dbt run-operation``. Every one is run twice, each time in a fresh JVM (this file
run as a script): against a planted weak session (plain Spark with Hive support, no
lockdown), where it reads the key (or runs a program, or calls Java), and against the
product's session (:func:`cdp.spark_udf.session_settings`: the ``cdp.spark.Lockdown``
extension), where it is refused with a ``cdp:`` message and the key appears nowhere.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from cdp import paths

pytestmark = pytest.mark.spark

# name -> the statements of the attack; the key file is {key}, its folder {folder}, a folder
# outside the warehouse {outside}. The last statement's rows are searched for the key.
ATTACKS: dict[str, list[str]] = {
    "select from a file path": ["select * from text.`{key}`"],
    "turn runSQLOnFiles back on": [
        "set spark.sql.runSQLOnFiles=true",
        "select * from text.`{key}`",
    ],
    "a table located at the key folder": [
        "create table t_location using text location '{folder}'",
        "select * from t_location",
    ],
    "a table with a path option": [
        "create table t_path using text options (path '{folder}')",
        "select * from t_path",
    ],
    "a temporary view over the file": [
        "create temporary view v_file using text options (path '{key}')",
        "select * from v_file",
    ],
    "a Hive table located at the key folder": [
        "create external table t_hive (line string) stored as textfile location '{folder}'",
        "select * from t_hive",
    ],
    "load data into a table": [
        "create table t_load (line string) stored as textfile",
        "load data local inpath '{key}' into table t_load",
        "select * from t_load",
    ],
    "a database located outside the warehouse": [
        "create database d_outside location '{outside}/db'",
        "create table d_outside.t using parquet as select 1 as a",
        "select * from d_outside.t",
    ],
    "transform through a shell command": [
        "select transform(id) using 'cat {key}' as (line string) from range(1)",
    ],
    "java_method calls Java": [
        "select java_method('java.lang.System', 'getenv', 'CDP_MASTER_KEY_FILE') as v",
    ],
    "try_reflect calls Java": [
        "select try_reflect('java.lang.System', 'getenv', 'CDP_MASTER_KEY_FILE') as v",
    ],
    "a Hive function of another class": [
        "create temporary function my_reflect as "
        "'org.apache.hadoop.hive.ql.udf.generic.GenericUDFReflect'",
        "select my_reflect('java.lang.System', 'getenv', 'CDP_MASTER_KEY_FILE') as v",
    ],
    "add file": ["add file '{key}'", "list file"],
    "insert overwrite directory": [
        "insert overwrite directory '{outside}/spill' using text select 'x' as v",
    ],
}
# What a weak session gives away without showing the key's bytes: Java (the key file's path).
SHOWS_JAVA = {
    "java_method calls Java",
    "try_reflect calls Java",
    "a Hive function of another class",
}
WRITES_OUTSIDE = {
    "insert overwrite directory",
    "add file",
    "a database located outside the warehouse",
}
# Tried, and not possible on Spark 4.3 even without the lockdown (kept so a Spark upgrade that
# opens them fails here): there is no read_files table function, and the XPath functions do
# not expand external entities.
CLOSED_BY_SPARK: dict[str, list[str]] = {
    "read_files": ["select * from read_files('{key}')"],
    "xpath with an external entity": [
        "select xpath_string('<!DOCTYPE x [<!ENTITY e SYSTEM \"file://{key}\">]><x>&e;</x>', "
        "'/x') as v"
    ],
}
# What the privacy stage itself needs keeps working under the lockdown.
ALLOWED: list[str] = [
    "create database if not exists staging",
    "create table staging.t_ok (a int, b string) using parquet",
    "insert into staging.t_ok values (1, 'x')",
    "set spark.sql.sources.partitionOverwriteMode = DYNAMIC",
    "create or replace temporary function cdp_key_version as 'cdp.spark.KeyVersionUDF'",
    "select a, b, input_file_name() as f from staging.t_ok",
]


def _run(mode: str, root: Path, key: Path) -> dict[str, Any]:
    """This file as a script in a fresh JVM (its environment names the key file); its report."""
    env = {k: v for k, v in os.environ.items() if k not in {"CDP_MASTER_KEY"}}
    env["CDP_MASTER_KEY_FILE"] = str(key)
    done = subprocess.run(
        [sys.executable, __file__, mode, str(root)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert done.returncode == 0 and lines, done.stderr[-4000:]
    report: dict[str, Any] = json.loads(lines[-1])
    return report


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("lockdown")
    folder = root / "keys"
    folder.mkdir(mode=0o700)
    secret = secrets.token_urlsafe(48)
    key = folder / "master.key"
    key.write_text(secret)
    key.chmod(0o600)
    return root, secret


def test_every_attack_reads_the_key_on_a_weak_session(scene: tuple[Path, str]) -> None:
    root, secret = scene
    report = _run("weak", root / "weak", root / "keys" / "master.key")
    for name in ATTACKS:
        outcome = report["attacks"][name]
        assert outcome["error"] is None, f"{name}: {outcome['error']}"
        if name in SHOWS_JAVA:
            assert str(root / "keys" / "master.key") in outcome["text"], name
        elif name in WRITES_OUTSIDE:
            assert outcome["text"], name
        else:
            assert secret in outcome["text"], f"{name} did not read the key on a weak session"
    assert (root / "weak" / "outside" / "spill").is_dir()  # it wrote outside the warehouse
    assert (root / "weak" / "outside" / "db" / "t").is_dir()
    for name in CLOSED_BY_SPARK:
        assert secret not in json.dumps(report["closed"][name]), name
    assert report["lockdown_check"].startswith("cdp: the Spark session is not locked down")


def test_the_lockdown_refuses_every_attack(scene: tuple[Path, str]) -> None:
    root, secret = scene
    report = _run("locked", root / "locked", root / "keys" / "master.key")
    for name in ATTACKS:
        outcome = report["attacks"][name]
        # Refused by the lockdown (a cdp: message), or for a path in SQL already by
        # spark.sql.runSQLOnFiles=false (the first wall; SQL cannot turn it back on).
        refused = outcome["error"] or ""
        assert refused.startswith("cdp: ") or (
            name == "select from a file path" and "TABLE_OR_VIEW_NOT_FOUND" in refused
        ), (name, outcome)
        assert secret not in json.dumps(outcome), name
    for name in CLOSED_BY_SPARK:
        assert secret not in json.dumps(report["closed"][name]), name
    assert not (root / "locked" / "outside" / "spill").exists()
    assert not (root / "locked" / "outside" / "db").exists()
    assert report["lockdown_check"] == "ok"
    assert report["allowed"] == "ok", report["allowed"]


def test_the_profiles_start_spark_with_the_lockdown() -> None:
    """The spark targets of profiles.yml set what cdp.spark_udf.session_settings sets."""
    from cdp import spark_udf

    profile = yaml.safe_load((paths.PROJECT_ROOT / "profiles.yml").read_text(encoding="utf-8"))
    outputs = profile["cdp"]["outputs"]
    wanted = spark_udf.session_settings()
    for target in ("spark", "spark_privacy", "spark_vault"):
        params = outputs[target]["server_side_parameters"]
        assert outputs[target]["method"] == "session"
        for name, value in wanted.items():
            if name == "spark.jars":
                assert "build/spark/cdp-spark-udf.jar" in params[name]
            else:
                assert str(params[name]) == value, (target, name)
    thrift = outputs["spark_thrift"]
    assert thrift["method"] == "thrift"
    assert (
        "env_var('CDP_SPARK_HOST'" in thrift["host"]
        and "env_var('CDP_SPARK_PORT'" in thrift["port"]
    )


# --------------------------------------------------------------------------- the script


def _script(mode: str, root: Path) -> dict[str, Any]:  # pragma: no cover - runs in a subprocess
    from cdp import spark_udf

    key = Path(os.environ["CDP_MASTER_KEY_FILE"])
    outside = root / "outside"
    outside.mkdir(parents=True, exist_ok=True)
    values = {
        "key": str(key),
        "folder": str(key.parent),
        "outside": str(outside),
    }
    spark = spark_udf.local_session(root / "session", lockdown=(mode == "locked"))
    spark.sparkContext.setLogLevel("OFF")

    def attempt(statements: list[str]) -> dict[str, Any]:
        text = ""
        for statement in statements:
            try:
                rows = spark.sql(statement.format(**values)).collect()
            except Exception as exc:
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                return {"error": spark_udf.cdp_error_message(exc) or first[:300]}
            text = json.dumps([[str(v) for v in row] for row in rows])
        return {"error": None, "text": text}

    report: dict[str, Any] = {
        "attacks": {name: attempt(sql) for name, sql in ATTACKS.items()},
        "closed": {name: attempt(sql) for name, sql in CLOSED_BY_SPARK.items()},
    }
    try:
        spark_udf.check_lockdown(spark)
        report["lockdown_check"] = "ok"
    except spark_udf.SparkRegistrationError as exc:
        report["lockdown_check"] = str(exc)
    allowed = attempt(ALLOWED)
    report["allowed"] = allowed["error"] or "ok"
    spark.stop()
    return report


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(_script(sys.argv[1], Path(sys.argv[2]))))
