"""Measure the keyed pseudonym functions on Spark against Spark's builtins.

    make spark-jar
    .venv-spark/bin/python scripts/bench_spark_udf.py [--rows 1000000] [--distinct N]

Options measured in one local session (``local[2]``, see
:func:`cdp.spark_udf.local_session`), on the same cached synthetic identifiers
(``user<i mod distinct>@example.com``), each as ``max(<expression>)`` over all rows:

* ``builtin sha2``: ``sha2(concat('email:', value), 256)``, unkeyed: the yardstick;
* ``cdp java udf``: ``cdp_pseudonym_identity('email', value)``, what the build registers;
* ``builtin hmac, key literal``: ``hmac(unhex('<key>'), ...)``: the same values, but the
  key is in the SQL, the plans and the event log (the weak configuration);
* ``python udf``: a Python UDF with the key in a closure, on ``--python-rows`` rows.

Before timing, each keyed option is checked against :func:`cdp.pseudonym.pseudonym`
on a sample. Prints rows/s (best of ``--repeat`` after one warm-up), the ratio to
sha2 and the load average. The key is random per run, in a temporary owner-only file.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cdp import keys, spark_udf
from cdp.plugin import PSEUDONYM_FUNCTIONS
from cdp.pseudonym import pseudonym


def _best(spark: Any, expression: str, table: str, repeat: int) -> float:
    query = f"select max({expression}) from {table}"
    spark.sql(query).collect()  # warm-up: class loading, JIT
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        spark.sql(query).collect()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--python-rows", type=int, default=200_000)
    parser.add_argument("--distinct", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="cdp-bench-spark-") as tmp:
        root = Path(tmp)
        key_file = root / "master.key"
        key_file.write_text(secrets.token_urlsafe(48) + "\n")
        key_file.chmod(0o600)
        os.environ.pop(keys.ENV_KEY, None)
        os.environ.pop(keys.ENV_KEY_VERSION, None)
        os.environ[keys.ENV_KEY_FILE] = str(key_file)
        master = keys.load_master_key()
        identity = keys.pseudonym_key(master, "identity")
        spark = spark_udf.local_session(root / "session", app_name="cdp-bench-spark-udf")
        spark.sparkContext.setLogLevel("ERROR")
        spark_udf.register(spark)
        version = master.version

        def python_pseudonym(id_type: str | None, value: str | None) -> str | None:
            if id_type is None or value is None:
                return None
            digest = hmac.new(identity, f"{id_type}:{value}".encode(), hashlib.sha256)
            return f"v{version}_{digest.hexdigest()}"

        spark.udf.register("py_pseudonym", python_pseudonym)
        for name, rows in (("bench", args.rows), ("bench_py", args.python_rows)):
            spark.range(rows).selectExpr(
                f"concat('user', cast(id % {args.distinct} as string), '@example.com') as value"
            ).cache().createOrReplaceTempView(name)
            spark.sql(f"select count(*) from {name}").collect()  # materialise the cache

        options = {
            "builtin sha2": ("sha2(concat('email:', value), 256)", "bench", args.rows),
            "cdp java udf": (
                f"{PSEUDONYM_FUNCTIONS['identity']}('email', value)",
                "bench",
                args.rows,
            ),
            "builtin hmac, key literal": (
                f"concat('v{version}_', lower(hex(hmac(unhex('{identity.hex()}'), "
                f"concat('email:', value)))))",
                "bench",
                args.rows,
            ),
            "python udf": ("py_pseudonym('email', value)", "bench_py", args.python_rows),
        }
        sample = [f"user{i}@example.com" for i in (0, 1, 7, 12345)]
        for name, (expression, _, _) in options.items():
            if name == "builtin sha2":
                continue
            got = [
                spark.sql(
                    f"select {expression} from values (:v) as t(value)", args={"v": v}
                ).collect()[0][0]
                for v in sample
            ]
            want = [pseudonym(identity, version, "email", v) for v in sample]
            if got != want:
                print(f"{name}: not equal to cdp.pseudonym on the sample", file=sys.stderr)
                return 1

        print(f"load before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(f"{'option':28} {'rows':>10} {'seconds':>8} {'rows/s':>12} {'vs sha2':>8}")
        base = None
        for name, (expression, table, rows) in options.items():
            seconds = _best(spark, expression, table, args.repeat)
            rate = rows / seconds
            base = base or rate
            print(f"{name:28} {rows:>10,} {seconds:>8.3f} {rate:>12,.0f} {rate / base:>8.2f}")
        print(f"load after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
