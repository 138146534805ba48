"""The trail a Spark build leaves for the key-leak audit (``cdp spark-build --audit DIR``).

The product's promise on Spark (decision 63) is that no key material reaches any SQL text,
plan, log, event log, metastore or table file. A byte search can only check that promise in
files it can read, so a build run for the audit writes, besides what it always writes
(dbt's ``target/`` and ``logs/``, the warehouse, the Derby metastore):

* Spark's event log (``DIR/events``), uncompressed (Spark 4 compresses it with zstd by
  default, and a byte search of a compressed file finds nothing);
* the tables' Parquet files uncompressed, for the same reason;
* the JVM's own log (log4j) at INFO in ``DIR/spark.log`` instead of the console, and its
  temporary files in ``DIR/tmp`` (what Spark does not delete when it stops is scanned too);
* ``EXPLAIN EXTENDED`` and ``EXPLAIN FORMATTED`` of every model the build ran that calls a
  keyed function (:func:`keyed_models`: the manifest's macro graph, not a list), in
  ``DIR/explain/<model>.txt``, explained in the build's own session, where the functions
  are registered and the tables exist.

Nothing here reads or names the key.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: The macros that call a keyed function (macros/privacy/pseudonymise.sql).
KEYED_MACROS: Final = ("macro.cdp.pseudonymise", "macro.cdp.key_version", "macro.cdp.vault_seal")

LOG4J: Final = """\
rootLogger.level = info
rootLogger.appenderRef.file.ref = file
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = %d %p %c: %m%n%ex
"""


def session_conf(folder: Path) -> dict[str, str]:
    """The settings of an audited session: the event log in ``folder/events``, nothing compressed."""
    events = folder / "events"
    events.mkdir(parents=True, exist_ok=True)
    return {
        "spark.eventLog.enabled": "true",
        "spark.eventLog.dir": str(events),
        "spark.eventLog.compress": "false",
        "spark.sql.parquet.compression.codec": "uncompressed",
    }


def java_options(folder: Path) -> str:
    """The driver's JVM options: its log4j log to ``folder/spark.log`` at INFO, its temporary
    files (Spark's local folders, Hive's session folders, extracted native libraries) under
    ``folder/tmp``, so that what the JVM leaves behind is scanned too."""
    (folder / "tmp").mkdir(parents=True, exist_ok=True)
    config = folder / "log4j2.properties"
    config.write_text(LOG4J.format(log=folder / "spark.log"), encoding="utf-8")
    return f"-Dlog4j2.configurationFile={config} -Djava.io.tmpdir={folder / 'tmp'}"


def _closure(start: Iterable[str], edges: Mapping[str, Iterable[str]]) -> set[str]:
    seen: set[str] = set()
    todo = list(start)
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo += list(edges.get(node, ()))
    return seen


def keyed_models(target: Path) -> dict[str, str]:
    """unique_id -> compiled SQL of each model of the last run that calls a keyed function.

    From dbt's ``run_results.json`` (what ran, and its compiled SQL) and ``manifest.json``
    (which macros each model and each ephemeral model it inlines calls, and which macros
    those call).
    """
    manifest = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
    results = json.loads((target / "run_results.json").read_text(encoding="utf-8"))
    nodes: dict[str, dict[str, Any]] = manifest["nodes"]
    macro_edges = {
        name: macro.get("depends_on", {}).get("macros", [])
        for name, macro in manifest["macros"].items()
    }
    # An ephemeral model's SQL is inlined into the models that ref it: so are its calls.
    inlined = {
        name: [
            parent
            for parent in node.get("depends_on", {}).get("nodes", [])
            if nodes.get(parent, {}).get("config", {}).get("materialized") == "ephemeral"
        ]
        for name, node in nodes.items()
    }
    found: dict[str, str] = {}
    for result in results["results"]:
        unique_id = result["unique_id"]
        if nodes.get(unique_id, {}).get("resource_type") != "model":
            continue
        if not result.get("compiled_code"):
            continue
        macros = [
            macro
            for name in _closure([unique_id], inlined)
            for macro in nodes[name].get("depends_on", {}).get("macros", [])
        ]
        if _closure(macros, macro_edges).intersection(KEYED_MACROS):
            found[unique_id] = str(result["compiled_code"])
    return found


def explain_models(spark: SparkSession, target: Path, folder: Path) -> list[str]:
    """``EXPLAIN EXTENDED`` and ``FORMATTED`` of each of :func:`keyed_models` into ``folder``."""
    out = folder / "explain"
    out.mkdir(parents=True, exist_ok=True)
    done = []
    for unique_id, sql in sorted(keyed_models(target).items()):
        plans = [
            str(spark.sql(f"explain {mode} {sql}").collect()[0][0])
            for mode in ("extended", "formatted")
        ]
        (out / f"{unique_id}.txt").write_text("\n\n".join(plans), encoding="utf-8")
        done.append(unique_id)
    return done
