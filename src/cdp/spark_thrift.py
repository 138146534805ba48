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

The port is bound to the loopback interface, and the server asks for no password (Hive's
``NONE`` authentication): whoever can connect to it can call the keyed functions, as whoever
can run the privacy stage can. It is the privacy stage's server, to run for that stage only,
as the OS user that owns the key file; an analytics stage needs a server without the keyed
functions (docs/portability.md, "The Thrift server").
"""

from __future__ import annotations

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


def thrift_settings(port: int) -> dict[str, str]:
    """The session settings of the server: one shared session, this machine, this port."""
    return {
        "spark.sql.hive.thriftServer.singleSession": "true",
        "spark.hadoop.hive.server2.thrift.bind.host": HOST,
        "spark.hadoop.hive.server2.thrift.port": str(port),
        "spark.hadoop.hive.server2.transport.mode": "binary",
    }


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
    args = parser.parse_args(argv)

    workdir = args.workdir.resolve()
    conf = {**spark_stage.workdir_settings(workdir), **thrift_settings(args.port)}
    options = ""
    if args.audit:
        audit = args.audit.resolve()
        conf, options = {**conf, **spark_audit.session_conf(audit)}, spark_audit.java_options(audit)
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
        print(f"{READY} {HOST}:{args.port} (close standard input to stop)", flush=True)
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
