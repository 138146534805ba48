"""dbt's Thrift target against a real Spark Thrift Server (issue 19).

The server is ``python -m cdp.spark_thrift``: the product's locked-down session with the keyed
functions and the normalisers registered, the shared build's landing zone loaded, served over
Thrift in one shared session (``spark.sql.hive.thriftServer.singleSession``). dbt runs in this
process, through dbt-spark's ``thrift`` method (PyHive), on the ``spark_thrift_privacy``
target: the same seed and run commands as ``cdp spark-build``. Then:

* every relation it built equals the session build's (conftest ``spark_builds``): the same
  columns and types, the same rows, pseudonyms included;
* a connection without the server's token (no password, a wrong one) is refused; with it,
  the keyed functions answer any value a client sends (what the token guards: the pseudonym
  of a guessed email). Against a planted weak server (the product's functions registered on a
  plain session served without a token and without the lockdown) a connection with no
  password gets the same pseudonym Python computes for the guess: a dictionary attack;
* a connection with the token still cannot read the key file (the lockdown holds for every
  statement the server plans); on the weak server the same SQL reads the key;
* nothing the server or dbt wrote holds key material or the token (:mod:`key_scan`).

This file also runs as a script (the weak server, in its own JVM).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from cdp import dbt_invoke, keys, paths, spark_stage, spark_thrift
from cdp.pseudonym import pseudonym
from conftest import environment
from key_scan import files_under, key_markers, scan_files
from spark_build import VARS, Builds, spark_env

pytestmark = [pytest.mark.spark, pytest.mark.dbt]

READY = "cdp: thrift server ready on"
TARGET = "spark_thrift_privacy"
#: The privacy stage's ported models. The vault models need the vault stage (its own target
#: and the vault seal registered: cdp.spark_stage), which the Thrift server does not serve.
#: The staging models only: the Thrift build proves the target and the lockdown over a server, and
#: the identity models' two minutes there would buy nothing more (their equality with DuckDB is
#: the session build's, test_spark_project.py).
PRIVACY_MODELS = [
    m for m in spark_stage.PORTED_MODELS if spark_stage.model_database(m) == "staging"
]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    process: subprocess.Popen[str]
    port: int
    out: Path
    err: Path

    def stop(self) -> int:
        """Close its standard input (it dumps, if asked, and stops); its exit code."""
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            return self.process.wait(timeout=300)
        finally:
            if self.process.poll() is None:
                self.process.kill()


def _start(command: list[str], folder: Path, key_file: Path, port: int) -> Server:
    folder.mkdir(parents=True, exist_ok=True)
    out, err = folder / "server.out", folder / "server.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=stdout,
            stderr=stderr,
            text=True,
            env=spark_env(key_file),
        )
    server = Server(process, port, out, err)
    deadline = time.monotonic() + 600
    while READY not in out.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            pytest.fail(f"the thrift server did not start:\n{err.read_text()[-6000:]}")
        time.sleep(1)
    return server


def _connect(port: int, password: str | None = None) -> Any:
    from pyhive import hive

    if password is None:  # PyHive's NONE: SASL PLAIN with a placeholder password
        return hive.connect(host="127.0.0.1", port=port, username="analyst")
    return hive.connect(
        host="127.0.0.1", port=port, username="analyst", auth="CUSTOM", password=password
    )


def _attempt(port: int, statement: str, password: str | None = None) -> str:
    """The rows of ``statement`` on a new connection as text, or ``error: <message>``
    (a refused connection included)."""
    try:
        connection = _connect(port, password)
    except Exception as exc:  # thrift's TTransportException: the login was refused
        return f"error: {exc}"
    try:
        cursor = connection.cursor()
        cursor.execute(statement)
        return repr(cursor.fetchall())
    except Exception as exc:  # PyHive raises OperationalError with the server's message
        return f"error: {exc}"
    finally:
        connection.close()


@dataclass
class ThriftBuild:
    root: Path
    dump: Path
    port: int
    token: str
    attacks: dict[str, str]
    #: A guessed value's pseudonym asked for without the token, with a wrong one, with it.
    oracle: dict[str, str]
    outcomes: list[dbt_invoke.DbtOutcome]


#: What a dictionary attack asks the server: the pseudonym of a guessed email.
GUESS = "select cdp_pseudonym_identity('email', 'ivan.petrov@example.ru')"


def _guess_pseudonym(key_file: Path) -> str:
    """The pseudonym Python computes for GUESS's value under ``key_file``."""
    master = keys.load_master_key({keys.ENV_KEY_FILE: str(key_file)})
    value = pseudonym(
        keys.pseudonym_key(master, "identity"), master.version, "email", "ivan.petrov@example.ru"
    )
    assert value is not None
    return value


def _attacks(key_file: Path) -> dict[str, str]:
    return {
        "select from a file path": f"select * from text.`{key_file}`",
        "a table located at the key folder": (
            f"create table t_key using text location '{key_file.parent}'"
        ),
        "java_method": "select java_method('java.lang.System', 'getenv', 'CDP_MASTER_KEY_FILE')",
    }


@pytest.fixture(scope="module")
def thrift_build(spark_builds: Builds, tmp_path_factory: pytest.TempPathFactory) -> ThriftBuild:
    root = tmp_path_factory.mktemp("spark_thrift")
    # the token outside root, so that the scan of root can look for it
    token_file = tmp_path_factory.mktemp("spark_thrift_token") / "thrift.token"
    port = _free_port()
    command = [sys.executable, "-m", "cdp.spark_thrift", "--workdir", str(root / "server")]
    command += ["--port", str(port), "--raw-db", str(spark_builds.raw_db)]
    command += ["--dump", str(root / "dump"), "--audit", str(root / "server" / "audit")]
    command += ["--token-file", str(token_file)]
    server = _start(command, root / "server", spark_builds.key_file, port)
    token = token_file.read_text()
    assert token_file.stat().st_mode & 0o777 == 0o600
    outcomes = []
    try:
        env = {
            "CDP_SPARK_HOST": "127.0.0.1",
            "CDP_SPARK_PORT": str(port),
            spark_thrift.ENV_CLIENT_TOKEN: token,
        }
        extra = ["--target-path", str(root / "client" / "target")]
        extra += ["--log-path", str(root / "client" / "logs")]
        # dbt itself holds no key on this target: the server's JVM reads the file.
        with environment(env, drop=[keys.ENV_KEY, keys.ENV_KEY_FILE]):
            for args in (
                ["seed", "--vars", VARS],
                ["run", "--vars", VARS, "--select", *PRIVACY_MODELS],
            ):
                outcome = dbt_invoke.invoke(
                    [*args, "--target", TARGET], extra=extra, project_dir=str(paths.project_dir())
                )
                outcomes.append(outcome)
                assert outcome.success, outcome.output[-6000:]
        attacks = {
            name: _attempt(port, sql, token)
            for name, sql in _attacks(spark_builds.key_file).items()
        }
        oracle = {
            "no password": _attempt(port, GUESS),
            "a wrong token": _attempt(port, GUESS, token[:-1] + ("A" if token[-1] != "A" else "B")),
            "the token": _attempt(port, GUESS, token),
        }
    finally:
        code = server.stop()
    assert code == 0, server.err.read_text()[-6000:]
    assert not token_file.exists()  # the token dies with its server
    return ThriftBuild(root, root / "dump", port, token, attacks, oracle, outcomes)


def _rows(path: Path) -> list[str]:
    return sorted(repr(tuple(row.values())) for row in pq.read_table(path).to_pylist())


def test_dbt_over_thrift_builds_what_the_session_build_builds(
    spark_builds: Builds, thrift_build: ThriftBuild
) -> None:
    session = {
        p.stem: p
        for p in spark_builds.dump.glob("*.parquet")
        if p.stem.split(".", 1)[0] in spark_stage.BUILT_DATABASES
        and p.stem.split(".", 1)[0] not in ("vault", "intermediate", "marts")
    }
    thrift = {p.stem: p for p in thrift_build.dump.glob("*.parquet")}
    assert thrift.keys() == session.keys()
    assert {f"staging.{m}" for m in PRIVACY_MODELS} <= thrift.keys()
    for name, path in thrift.items():
        assert pq.read_schema(path) == pq.read_schema(session[name]), name
        rows = _rows(path)
        assert rows and rows == _rows(session[name]), name
    keys_ = pq.read_table(thrift["staging.stg_crm__customers_triaged"]).column("customer_key")
    assert any(k and k.startswith("v1_") for k in keys_.to_pylist())  # pseudonyms compared


def test_only_the_token_lets_a_connection_reach_the_keyed_functions(
    spark_builds: Builds, thrift_build: ThriftBuild
) -> None:
    for attempt in ("no password", "a wrong token"):
        outcome = thrift_build.oracle[attempt]
        assert outcome.startswith("error: "), (attempt, outcome)
        assert "v1_" not in outcome and thrift_build.token not in outcome, (attempt, outcome)
    # with the token, the functions answer any value: what the token guards
    assert _guess_pseudonym(spark_builds.key_file) in thrift_build.oracle["the token"]


def test_the_lockdown_holds_over_thrift(spark_builds: Builds, thrift_build: ThriftBuild) -> None:
    secret = spark_builds.key_file.read_text().strip()
    for name, outcome in thrift_build.attacks.items():
        assert outcome.startswith("error: "), (name, outcome)
        assert "cdp: " in outcome or "TABLE_OR_VIEW_NOT_FOUND" in outcome, (name, outcome)
        assert secret not in outcome, name


def test_nothing_the_thrift_build_wrote_holds_key_material(
    spark_builds: Builds, thrift_build: ThriftBuild
) -> None:
    files = files_under(thrift_build.root)
    master = keys.load_master_key({keys.ENV_KEY_FILE: str(spark_builds.key_file)})
    assert scan_files(files, key_markers(master), root=thrift_build.root) == []
    token = thrift_build.token.encode()
    assert [p for p in files if token in p.read_bytes()] == []
    trace = b"cdp_pseudonym_identity"
    for where in ("client/logs", "client/target/run", "server/audit/events"):
        scanned = [p for p in files if (thrift_build.root / where) in p.parents]
        assert any(trace in p.read_bytes() for p in scanned), where


# --------------------------------------------------------------------------- planted weak


@pytest.fixture(scope="module")
def weak_server(spark_builds: Builds, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    root = tmp_path_factory.mktemp("spark_thrift_weak")
    port = _free_port()
    command = [sys.executable, __file__, str(root / "server"), str(port)]
    server = _start(command, root / "server", spark_builds.key_file, port)
    try:
        yield port
    finally:
        server.stop()


def test_a_weak_thrift_server_gives_the_key_and_the_pseudonyms_away(
    spark_builds: Builds, weak_server: int
) -> None:
    """The product's functions on a plain session served without a token: a connection with no
    password reads the key file, and gets the pseudonym of any value it guesses."""
    secret = spark_builds.key_file.read_text().strip()
    read = _attempt(weak_server, _attacks(spark_builds.key_file)["select from a file path"])
    assert secret in read
    assert _guess_pseudonym(spark_builds.key_file) in _attempt(weak_server, GUESS)


def _weak(workdir: Path, port: int) -> None:  # pragma: no cover - runs as a script
    """A Thrift server on a plain session (no lockdown, no token: Hive's NONE authentication),
    the keyed functions registered on it as the product registers them, one shared session."""
    from cdp import spark_udf

    settings = {**spark_stage.workdir_settings(workdir), **spark_thrift.thrift_settings(port)}
    del settings["spark.hadoop.hive.server2.authentication"]  # Hive's NONE
    settings["spark.jars"] = str(spark_udf.JAR)
    # without the lockdown extension nothing loads the jar at start, and a Thrift connection's
    # thread would not find the functions' helper classes (NoClassDefFoundError)
    settings["spark.driver.extraClassPath"] = str(spark_udf.JAR)
    spark = spark_udf.local_session(workdir, conf=settings, lockdown=False)
    spark.sparkContext.setLogLevel("ERROR")
    for statement in spark_udf.registration_sql():
        spark.sql(statement)
    assert spark.sql("select cdp_key_version()").collect()[0][0] == "v1"
    server = spark_thrift.serve(spark)
    spark_thrift.wait_for_port(port)
    print(f"{READY} 127.0.0.1:{port}", flush=True)
    sys.stdin.read()
    server.stop()  # type: ignore[attr-defined]
    spark.stop()


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("TZ", "UTC")
    _weak(Path(sys.argv[1]), int(sys.argv[2]))
