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
* ``EXPLAIN EXTENDED`` and ``EXPLAIN FORMATTED`` of every model of every stage that calls a
  keyed function (:func:`keyed_models`: the manifest's macro graph, not a list), in
  ``DIR/explain/<model>.txt``. :class:`PlanRecorder` takes them in the build's own session
  at the moment dbt creates the model's table, just before the statement runs: the
  functions are registered and everything the query reads exists then (the connected
  components' scratch tables are dropped by the model's post-hook; a later stage's run
  overwrites ``run_results.json``). After each stage, :meth:`PlanRecorder.check` holds the
  recorded queries to that stage's compiled SQL, model by model.

Nothing here reads or names the key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
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


def _keyed_ids(nodes: Mapping[str, Any], macros: Mapping[str, Any], ids: Iterable[str]) -> set[str]:
    """Which of the models ``ids`` call a keyed function: their macros, and those of the
    ephemeral models they inline, followed through the macro graph."""
    macro_edges = {
        name: macro.get("depends_on", {}).get("macros", []) for name, macro in macros.items()
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
    found = set()
    for unique_id in ids:
        if nodes.get(unique_id, {}).get("resource_type") != "model":
            continue
        called = [
            macro
            for name in _closure([unique_id], inlined)
            for macro in nodes[name].get("depends_on", {}).get("macros", [])
        ]
        if _closure(called, macro_edges).intersection(KEYED_MACROS):
            found.add(unique_id)
    return found


def _manifest(target: Path) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
    return manifest


def keyed_models(target: Path) -> dict[str, str]:
    """unique_id -> compiled SQL of each model of the run whose artefacts are in ``target``
    that calls a keyed function.

    From dbt's ``run_results.json`` (what ran, and its compiled SQL) and ``manifest.json``
    (which macros each model and each ephemeral model it inlines calls, and which macros
    those call). One dbt invocation: each stage of a Spark build writes its own ``target``.
    """
    manifest = _manifest(target)
    results = json.loads((target / "run_results.json").read_text(encoding="utf-8"))
    compiled = {
        str(result["unique_id"]): str(result["compiled_code"])
        for result in results["results"]
        if result.get("compiled_code")
    }
    keyed = _keyed_ids(manifest["nodes"], manifest["macros"], compiled)
    return {unique_id: compiled[unique_id] for unique_id in sorted(keyed)}


def _relation(name: str) -> str:
    return name.replace("`", "").lower()


def keyed_relations(target: Path) -> dict[str, str]:
    """``database.table`` -> unique_id of every model of the project that calls a keyed
    function (whatever is selected: the manifest holds every node)."""
    manifest = _manifest(target)
    nodes: dict[str, dict[str, Any]] = manifest["nodes"]
    keyed = _keyed_ids(nodes, manifest["macros"], nodes)
    return {
        _relation(f"{nodes[uid]['schema']}.{nodes[uid].get('alias') or nodes[uid]['name']}"): uid
        for uid in keyed
    }


#: How dbt-spark creates a model's table (``spark__create_table_as``), after dbt's query comment
#: (``/* {"app": "dbt", ...} */``): ``create [or replace] table <relation>`` and its clauses
#: (``using parquet``...), then ``as`` on a line of its own, then the model's compiled SQL.
_CREATE_AS: Final = re.compile(
    r"\A\s*(?:/\*.*?\*/\s*)*create\s+(?:or\s+replace\s+)?table\s+(?P<relation>\S+)(?P<clauses>.*?)\n\s*as\s*\n(?P<query>.*)\Z",
    re.S | re.I,
)


def created_table(statement: str) -> tuple[str, str] | None:
    """(``database.table``, query) of a statement that creates a table as dbt-spark writes it
    (``spark__create_table_as``), else None."""
    found = _CREATE_AS.match(statement)
    if found is None:
        return None
    return _relation(found.group("relation")), found.group("query")


def _squeezed(sql: str) -> str:
    return " ".join(sql.split())


class PlanRecorder:
    """EXPLAIN EXTENDED and FORMATTED of each keyed model's query, taken as dbt creates its
    table: ``spark.sql`` of the build's session (the one dbt-spark's ``session`` method gets
    from ``getOrCreate``) is wrapped so that a ``create table <keyed model> ... as <query>``
    first explains ``<query>``, then runs. Nothing but the statements dbt sends is explained;
    a plan that cannot be taken fails the statement, so an audited build never passes
    without its plans.
    """

    def __init__(self, spark: SparkSession, folder: Path) -> None:
        self.spark = spark
        self.folder = folder / "explain"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.relations: dict[str, str] = {}
        self.queries: dict[str, str] = {}
        self._sql: Callable[..., Any] = spark.sql

    def install(self, relations: Mapping[str, str]) -> None:
        """Explain the models of ``relations`` (:func:`keyed_relations`) from now on."""
        self.relations = dict(relations)
        recorder = self

        def sql(query: str, *args: Any, **kwargs: Any) -> Any:
            recorder.statement(query)
            return recorder._sql(query, *args, **kwargs)

        self.spark.sql = sql

    def uninstall(self) -> None:
        self.spark.sql = self._sql

    def check(self, target: Path) -> list[str]:
        """Every keyed model the stage whose artefacts are in ``target`` ran was explained, and
        what was explained is its compiled SQL (whitespace aside); the models, or raise."""
        done = []
        for unique_id, compiled in keyed_models(target).items():
            query = self.queries.get(unique_id)
            if query is None:
                raise AuditIncomplete(f"cdp: the audit has no plan of {unique_id}")
            if _squeezed(query) != _squeezed(compiled):
                raise AuditIncomplete(f"cdp: the audit explained another query than {unique_id}'s")
            done.append(unique_id)
        return done

    def statement(self, text: str) -> None:
        created = created_table(text)
        if created is None:
            return
        relation, query = created
        unique_id = self.relations.get(relation)
        if unique_id is None:
            return
        plans = [
            str(self._sql(f"explain {mode} {query}").collect()[0][0])
            for mode in ("extended", "formatted")
        ]
        (self.folder / f"{unique_id}.txt").write_text("\n\n".join(plans), encoding="utf-8")
        self.queries[unique_id] = query


class AuditIncomplete(RuntimeError):
    """A keyed model of a stage was not explained as it ran, or not its own SQL."""
