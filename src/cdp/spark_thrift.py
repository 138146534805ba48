"""A Spark Thrift Server for the privacy stage: dbt's ``spark_thrift`` target connects to it.

``python -m cdp.spark_thrift --workdir DIR --port N`` (in .venv-spark, after ``make
spark-jar``) starts the same locked-down local session a Spark build starts
(:func:`cdp.spark_stage.start_session`: the keyed functions' jar, the ``cdp.spark.Lockdown``
extension), registers the keyed functions and the normalisers on it
(:func:`cdp.spark_udf.register` refuses a session without the lockdown and checks the
functions against Python), optionally loads a landing zone (``--raw-db``), and only then
serves that very session over Thrift (``HiveThriftServer2.startWithContext``) on
``127.0.0.1:N``, until its standard input closes.

Why a driver of ours and not Spark's ``start-thriftserver.sh``: the keyed functions and the
normalisers are temporary functions of one session, and the normalisers are Python functions
that only a Python driver can register. With ``spark.sql.hive.thriftServer.singleSession=true``
(a static setting, given here) every connection shares that session, so dbt finds the
functions; without it, each connection gets a new session without them
(pytests/test_spark_thrift.py shows both). Every statement a connection sends is planned by
that session, so the lockdown's check holds for it as for the session build.

Whoever connects can call the keyed functions, so can compute the pseudonym of any value it
guesses: a dictionary attack on every pseudonym of the warehouse. The port is bound to the
loopback interface, and a connection must give the server's token as its password (Hive's
``CUSTOM`` authentication, ``cdp.spark.ThriftToken``; decision 89): a fresh random secret per
start, written to an owner-only file (``--token-file``) whose path the JVM reads from
``CDP_THRIFT_TOKEN_FILE``. So only the OS user that runs the server (the one that owns the key
file) can connect: dbt reads the token from ``DBT_ENV_SECRET_CDP_SPARK_TOKEN`` (profiles.yml;
dbt keeps a ``DBT_ENV_SECRET_`` variable out of its logs and artifacts). It is the privacy
stage's server, to run for that stage only; an analytics stage needs a server without the
keyed functions (docs/portability.md, "The Thrift server").
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

from cdp import spark_audit, spark_stage, spark_udf
from cdp.keys import KeyConfigError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: Where the server listens: this machine only.
HOST: Final = "127.0.0.1"
#: What the driver prints once the port accepts connections.
READY: Final = "cdp: thrift server ready on"
#: The JVM's variable naming the token file (cdp.spark.ThriftToken reads it).
ENV_TOKEN_FILE: Final = "CDP_THRIFT_TOKEN_FILE"  # noqa: S105 - a variable's name
#: The variable dbt's Thrift targets read the token from (profiles.yml).
ENV_CLIENT_TOKEN: Final = "DBT_ENV_SECRET_CDP_SPARK_TOKEN"  # noqa: S105 - a variable's name


def thrift_settings(port: int) -> dict[str, str]:
    """The session settings of the server: one shared session, this machine, this port, a
    connection let in only with the token (:data:`AUTH_CLASS`, named in :data:`JAVA_OPTIONS`)."""
    return {
        "spark.sql.hive.thriftServer.singleSession": "true",
        "spark.hadoop.hive.server2.thrift.bind.host": HOST,
        "spark.hadoop.hive.server2.thrift.port": str(port),
        "spark.hadoop.hive.server2.transport.mode": "binary",
        "spark.hadoop.hive.server2.authentication": "CUSTOM",
    }


#: The class that checks a connection's password (spark/src/cdp/spark/ThriftToken.java).
AUTH_CLASS: Final = "cdp.spark.ThriftToken"
#: The JVM options of the server: Hive builds its authentication provider from a fresh
#: ``HiveConf`` (system properties and hive-site.xml, not the session's ``spark.hadoop.*``
#: settings), so the class is named as a system property; without it Hive tries to instantiate
#: the interface itself and every login fails.
JAVA_OPTIONS: Final = f"-Dhive.server2.custom.authentication.class={AUTH_CLASS}"


def write_token(path: Path) -> None:
    """A fresh random token in ``path``, owner-only (0600) from its creation; an old token file
    is replaced, so a token dies with the server that made it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(secrets.token_urlsafe(32))


def serve(spark: SparkSession) -> object:
    """``HiveThriftServer2.startWithContext`` on ``spark``'s own session (its functions)."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    server = jvm.org.apache.spark.sql.hive.thriftserver.HiveThriftServer2
    return server.startWithContext(spark._jsparkSession.sqlContext())


def wait_for_port(port: int, timeout: float = 120.0) -> None:
    """Return once ``HOST:port`` accepts a connection; raise ``TimeoutError`` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((HOST, port), timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"cdp: the thrift server did not listen on {HOST}:{port}"
                ) from None
            time.sleep(0.5)


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="cdp spark-thrift",
        description="Serve a locked-down local Spark session with the keyed functions and the "
        "normalisers registered over Thrift on 127.0.0.1 (dbt's spark_thrift target), until "
        "standard input closes. The JVM reads the master key from the file named by "
        "CDP_MASTER_KEY_FILE.",
    )
    parser.add_argument("--workdir", type=Path, required=True, help="warehouse and metastore")
    parser.add_argument("--port", type=int, default=10000, help="the Thrift port (10000)")
    parser.add_argument("--raw-db", type=Path, help="load this DuckDB landing zone first")
    parser.add_argument("--dump", type=Path, help="at the end, the built relations as Parquet")
    parser.add_argument("--audit", type=Path, help="the key-leak audit's trail (cdp.spark_audit)")
    parser.add_argument(
        "--token-file",
        type=Path,
        help="where the connection token goes, owner-only, new at each start (default: "
        "<workdir>/thrift.token); a client passes its content as the password "
        f"({ENV_CLIENT_TOKEN} for dbt)",
    )
    args = parser.parse_args(argv)

    workdir = args.workdir.resolve()
    token_file = (args.token_file or workdir / "thrift.token").resolve()
    write_token(token_file)
    os.environ[ENV_TOKEN_FILE] = str(token_file)  # the JVM started below inherits it
    conf = {**spark_stage.workdir_settings(workdir), **thrift_settings(args.port)}
    options = JAVA_OPTIONS
    if args.audit:
        audit = args.audit.resolve()
        conf = {**conf, **spark_audit.session_conf(audit)}
        options = f"{spark_audit.java_options(audit)} {options}"
    spark = spark_stage.start_session(workdir, conf=conf, java_options=options)
    if not args.audit:
        spark.sparkContext.setLogLevel("ERROR")
    server = None
    try:
        spark_udf.register(spark)  # refuses a session without the lockdown; checks the key
        spark_stage.register_normalisers(spark)
        if args.raw_db:
            counts = spark_stage.load_landing(spark, args.raw_db)
            print(f"cdp: loaded {sum(counts.values())} rows into {len(counts)} Spark tables")
        server = serve(spark)
        wait_for_port(args.port)
        print(
            f"{READY} {HOST}:{args.port}, token in {token_file} (close standard input to stop)",
            flush=True,
        )
        # a TERM (a service manager's stop) ends the server as a closed input does: the
        # finally below stops it and removes the token
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        sys.stdin.read()
        if args.dump:
            # the privacy stage's databases the client built: the vault stage is not served here
            served = [
                d
                for d in spark_stage.BUILT_DATABASES
                if d != "vault" and spark.catalog.databaseExists(d)
            ]
            spark_stage.dump_tables(spark, served, args.dump)
    except (spark_udf.SparkRegistrationError, KeyConfigError, spark_stage.SparkLoadError) as exc:
        print(str(exc), file=sys.stderr)
        return 2
    finally:
        if server is not None:
            server.stop()  # type: ignore[attr-defined]
        spark.stop()
        token_file.unlink(missing_ok=True)  # no connection after the server
    return 0


if __name__ == "__main__":
    sys.exit(main())
