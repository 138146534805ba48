"""The privacy stage on Apache Spark: load the landing zone, register the keyed functions, run dbt.

One process, one local ``SparkSession`` (dbt-spark's ``session`` method runs every statement
on ``SparkSession.builder.getOrCreate()``, so it finds the session started here):

1. :func:`start_session` starts it with :func:`cdp.spark_udf.session_settings` (the keyed
   functions' jar and the lockdown extension) and the folders of ``workdir``;
2. :func:`load_landing` copies every table of the DuckDB landing zone (``CDP_RAW_DB``, what
   the generator and the loaders write) into a Spark table ``raw_<schema>.<table>``: one
   Spark database per raw schema (dbt-spark has no catalogs: a relation's database must be
   its schema, so the sources name ``raw_<schema>`` on Spark, ``raw.<schema>`` on DuckDB),
   column types kept (:data:`SPARK_TYPES`);
3. :func:`run_privacy_stage` registers the keyed functions (:func:`cdp.spark_udf.register`:
   refused without the lockdown; any failure raises, so no model runs) and the
   normalisers (:func:`register_normalisers`), then runs dbt on the ``spark_privacy``
   target in-process.

Nothing here reads the key: the JVM reads the file named by ``CDP_MASTER_KEY_FILE``, and
:func:`cdp.spark_udf.register` reads it in Python only to compute the self-check's answers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import duckdb
import pyarrow as pa

from cdp import dbt_invoke, paths, spark_audit, spark_json, spark_udf, stages
from cdp.dbt_invoke import DbtOutcome
from cdp.keys import KeyConfigError
from cdp.plugin import NORMALISER_FUNCTIONS
from cdp.purge.scopes import SCOPE_COLUMNS

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: The Spark target of the privacy stage (profiles.yml).
PRIVACY_TARGET: Final = "spark_privacy"
#: The Spark target of the vault stage (profiles.yml): the vault models, with the vault seal.
VAULT_TARGET: Final = "spark_vault"
#: The Spark target of the analytics stage (profiles.yml): the models downstream of staging and
#: identity (consent, rights), run after the keyed functions are dropped from the session.
ANALYTICS_TARGET: Final = "spark"
#: The stages in the order a build runs them (cdp.stages.STAGES), by the tags of dbt_project.yml.
STAGES: Final = tuple(stage.name for stage in stages.STAGES)

#: The consent ledger on Spark (decision 77): the purge's kept scopes, then the ledger's tables in
#: dependency order, and the two rights models int_consent__person_contacts reads. Its ephemeral
#: models (consent history, opt-outs, the identity map) are inlined into these.
LEDGER_MODELS: Final[tuple[str, ...]] = (
    "stg_rights__consent_scopes",
    *(
        f"int_consent__{name}"
        for name in (
            "subject_persons",
            "subject_events",
            "subject_ledger",
            "person_events",
            "person_ledger",
            "person_restrictions",
            "person_purposes",
            "person_activity",
            "profiled_persons",
        )
    ),
    "int_rights__request_persons",
    "int_rights__rectifications",
    "int_consent__person_contacts",
)
#: The rights models after the ledger (decision 78): the production calendar, the erasure and
#: exclusion lists, the build's executions (incremental: dbt-spark's ``append``, insert only, as
#: the model inserts only requests no build executed yet) and every request's tracking.
RIGHTS_MODELS: Final[tuple[str, ...]] = tuple(
    f"int_rights__{name}"
    for name in (
        "calendar",
        "erased_persons",
        "excluded_persons",
        "request_executions",
        "request_tracking",
    )
)
#: The profile marts (decision 78), their contracts checked on Spark by the post-hook
#: enforce_contract (macros/spark/contract.sql).
PROFILE_MODELS: Final[tuple[str, ...]] = ("fct_profile_events", "dim_customer_profile")
#: The audiences (decision 82), their contracts checked on Spark by enforce_contract, and the
#: audit views over every triaged staging model (views on Spark too: they call no function of
#: the session).
AUDIENCE_MODELS: Final[tuple[str, ...]] = (
    "rpt_marketing_audiences",
    "rpt_email_audience",
    "rpt_push_audience",
    "rpt_sms_audience",
)
AUDIT_MODELS: Final[tuple[str, ...]] = ("audit_quarantine", "audit_row_accounting")
#: The BI marts (decision 83): their person-level inputs, the five anonymised marts (contracts
#: checked on Spark by enforce_contract), the population sketch and the disclosure ledger
#: (incremental: dbt-spark's ``append``; each build adds its own release's rows).
BI_MODELS: Final[tuple[str, ...]] = (
    "int_bi__analytics_persons",
    "int_bi__analytics_events",
    "bi_sales_by_region_month",
    "bi_customer_segments",
    "bi_campaign_performance",
    "bi_consent_coverage",
    "bi_cohort_retention",
    "audit_bi_population_sketch",
    "audit_bi_disclosure_ledger",
)
#: The models ported to Spark so far (issue 19), besides the seeds: what ``main`` builds and
#: pytests/test_spark_project.py compares with DuckDB, relation by relation.
PORTED_MODELS: Final[tuple[str, ...]] = (
    "stg_crm__customers_triaged",
    "stg_crm__customers",
    "stg_shop__orders_triaged",
    "stg_shop__orders",
    "stg_shop__order_items_triaged",
    "stg_shop__order_items",
    "stg_privacy__subject_requests_triaged",
    "stg_privacy__subject_requests",
    "stg_rights__request_closures",
    "stg_web__events_triaged",
    "stg_web__events",
    "stg_messaging__message_events_triaged",
    "stg_messaging__message_events",
    "stg_privacy__consent_events_triaged",
    "stg_privacy__consent_events",
    "vault_identifiers",
    "vault_customer_names",
    *(
        f"int_identity_{name}"
        for name in (
            "junk_identifiers",
            "edges",
            "nodes",
            "components",
            "devices",
            "person_identifiers",
            "persons",
            "person_edges",
            "records_resolved",
            "refused_identifiers",
        )
    ),
    *LEDGER_MODELS,
    *RIGHTS_MODELS,
    *PROFILE_MODELS,
    *AUDIENCE_MODELS,
    *AUDIT_MODELS,
    *BI_MODELS,
)
#: The ported models of the vault stage (models/staging/vault; the Spark database ``vault``).
VAULT_MODELS: Final[tuple[str, ...]] = ("vault_identifiers", "vault_customer_names")
#: The Spark databases a Spark build writes (seeds, staging, intermediate, marts, vault) besides
#: the raw ones and MART_DATABASES.
BUILT_DATABASES: Final[tuple[str, ...]] = (
    "reference",
    "staging",
    "intermediate",
    "marts",
    "vault",
)
#: The databases of the BI marts (``bi``), their ledgers and the audit views (``audit``),
#: analytics stage only (decisions 82, 83): dumped with BUILT_DATABASES, kept apart from it because the Thrift comparison
#: (cdp.spark_thrift, test_spark_thrift.py) builds the privacy stage and serves those.
MART_DATABASES: Final[tuple[str, ...]] = ("bi", "audit")


def stage_target_path(target: Path, stage: str) -> Path:
    """Where the stage named ``stage`` writes its dbt artefacts: where cdp.stages puts them on
    DuckDB (:func:`cdp.stages.stage_target_path`)."""
    (found,) = (s for s in stages.STAGES if s.name == stage)
    return stages.stage_target_path(target, found)


def model_stages(manifest_path: Path, models: Sequence[str]) -> dict[str, str]:
    """model -> its stage, from its tags in the parsed project (dbt_project.yml and the
    models' own config: ``privacy_stage``, ``vault_stage``, else analytics)."""
    nodes = json.loads(manifest_path.read_text(encoding="utf-8"))["nodes"]
    return {model: _node_stage(nodes[f"model.cdp.{model}"]) for model in models}


def _node_stage(node: Mapping[str, Any]) -> str:
    """The stage of a node of the manifest, by its tags."""
    tags = set(node.get("tags", []))
    return (
        "vault" if "vault_stage" in tags else "privacy" if "privacy_stage" in tags else "analytics"
    )


def model_database(model: str) -> str:
    """The Spark database a ported model is built in (its schema: dbt-spark has no catalogs)."""
    if model in VAULT_MODELS:
        return "vault"
    if model in PROFILE_MODELS or model in AUDIENCE_MODELS:
        return "marts"
    if model in AUDIT_MODELS:
        return "audit"
    if model in BI_MODELS and not model.startswith("int_"):
        return "audit" if model.startswith("audit_") else "bi"
    return "intermediate" if model.startswith("int_") else "staging"


#: DuckDB column type -> Spark SQL type, for what a landing zone holds. A type not listed
#: stops the load: a silent conversion (a decimal to a double, a timestamp to text) would
#: make the two engines' outputs differ.
SPARK_TYPES: Final[dict[str, str]] = {
    "VARCHAR": "string",
    "BOOLEAN": "boolean",
    "INTEGER": "int",
    "BIGINT": "bigint",
    "SMALLINT": "smallint",
    "DOUBLE": "double",
    "DATE": "date",
    "TIMESTAMP": "timestamp",
}
_DECIMAL = re.compile(r"DECIMAL\((\d+),(\d+)\)")
_NAME = re.compile(r"[a-z_][a-z0-9_]*")


class SparkLoadError(RuntimeError):
    """The landing zone could not be copied into Spark as it is."""


def spark_type(duckdb_type: str) -> str:
    """The Spark SQL type that holds a DuckDB column type exactly."""
    found = _DECIMAL.fullmatch(duckdb_type)
    if found:
        return f"decimal({found.group(1)},{found.group(2)})"
    if duckdb_type not in SPARK_TYPES:
        raise SparkLoadError(f"cdp: no exact Spark type for the DuckDB type {duckdb_type}")
    return SPARK_TYPES[duckdb_type]


def raw_database(schema: str) -> str:
    """The Spark database that holds the raw schema ``schema`` (the sources' ``raw_<schema>``)."""
    return f"raw_{schema}"


def start_session(
    workdir: Path, conf: Mapping[str, str] | None = None, java_options: str = ""
) -> SparkSession:
    """The local session of a Spark build: warehouse and metastore in ``workdir``, locked down."""
    return spark_udf.local_session(
        workdir, app_name="cdp-spark-build", conf=conf, java_options=java_options
    )


def landing_tables(raw_db: Path) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """(schema, table) -> [(column, DuckDB type)] of every table in the landing zone."""
    con = duckdb.connect(str(raw_db), read_only=True)
    try:
        rows = con.execute(
            """
            select table_schema, table_name, column_name, data_type
            from information_schema.columns
            where table_schema not in ('information_schema', 'pg_catalog')
            order by table_schema, table_name, ordinal_position
            """
        ).fetchall()
    finally:
        con.close()
    tables: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for schema, table, column, data_type in rows:
        for name in (schema, table, column):
            if not _NAME.fullmatch(name):
                raise SparkLoadError(f"cdp: the landing zone has an unexpected name {name!r}")
        tables.setdefault((schema, table), []).append((column, str(data_type)))
    return tables


#: Raw tables a Spark build always has, empty when the landing zone has none: the purge's kept
#: consent scopes (cdp.purge.scopes, decision 71), which only the purge writes, on DuckDB.
PROVIDED_TABLES: Final[dict[tuple[str, str], list[tuple[str, str]]]] = {
    ("audit", "consent_scopes"): [
        (name, kind.removesuffix(" NOT NULL")) for name, kind in SCOPE_COLUMNS
    ],
}


def tables_to_load(raw_db: Path) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """The landing zone's tables (:func:`landing_tables`) and the :data:`PROVIDED_TABLES` it
    lacks (loaded empty, of the shape their writer gives them)."""
    return {**PROVIDED_TABLES, **landing_tables(raw_db)}


#: Rows per Arrow batch a landing table is loaded in. The whole batch passes through the
#: driver's heap (1 GiB in cdp.spark_udf.local_session): a 100,000-customer landing zone loaded
#: in one piece per table ran out of it (java.lang.OutOfMemoryError in
#: readArrowStreamFromFile, decision 86), and so did its web events in batches of 200,000 rows
#: (the scheduler's thread, serialising a task that carries its batch; decision 90).
LOAD_BATCH_ROWS: Final = 50_000


def load_landing(
    spark: SparkSession, raw_db: Path, *, rows_per_batch: int = LOAD_BATCH_ROWS
) -> dict[str, int]:
    """Copy every landing table into ``raw_<schema>.<table>`` (replaced); rows per table.

    The rows go through Arrow with an explicit Spark schema, so every column keeps its type
    (naive DuckDB timestamps become Spark timestamps read in the session's UTC), in batches of
    ``rows_per_batch`` rows: the first replaces the table, the others append to it. A table of
    :data:`PROVIDED_TABLES` the landing zone lacks is created empty.
    """
    counts: dict[str, int] = {}
    con = duckdb.connect(str(raw_db), read_only=True)
    present = landing_tables(raw_db)
    try:
        for (schema, table), columns in tables_to_load(raw_db).items():
            ddl = ", ".join(f"`{name}` {spark_type(kind)}" for name, kind in columns)
            database = raw_database(schema)
            spark.sql(f"create database if not exists `{database}`")
            name = f"`{database}`.`{table}`"
            rows, mode = 0, "overwrite"
            if (schema, table) in present:
                query = con.sql(f'select * from "{schema}"."{table}"')
                for batch in query.to_arrow_reader(rows_per_batch):
                    if batch.num_rows:
                        frame = spark.createDataFrame(pa.Table.from_batches([batch]), schema=ddl)
                        frame.write.mode(mode).format("parquet").saveAsTable(name)
                        rows, mode = rows + batch.num_rows, "append"
            if mode == "overwrite":  # no row (or no such table in the landing zone): empty
                empty = pa.table({column: pa.array([], type=pa.null()) for column, _ in columns})
                frame = spark.createDataFrame(empty, schema=ddl)
                frame.write.mode(mode).format("parquet").saveAsTable(name)
            counts[f"{database}.{table}"] = rows
    finally:
        con.close()
    return counts


def register_normalisers(spark: SparkSession) -> None:
    """The normalisers as Spark Python UDFs of this session, named as the DuckDB plugin names them,
    and DuckDB's JSON reading (:mod:`cdp.spark_json`: ``cdp_json_valid``, ``cdp_json_extract_string``).

    The same Python functions (:mod:`cdp.normalise`, the plugin's
    :data:`~cdp.plugin.NORMALISER_FUNCTIONS`) as on DuckDB, so the same values; on Spark they
    run in Python workers, once per distinct value (the models' recipe). A view cannot call
    them (they live in this session): the staging models that do are tables, as on DuckDB.
    """
    from pyspark.sql.functions import arrow_udf
    from pyspark.sql.types import BooleanType, StringType

    for name, function in NORMALISER_FUNCTIONS.items():
        spark.udf.register(name, function, StringType())
    # DuckDB's JSON reading (cdp.spark_json): no Spark builtin reads JSON as DuckDB does. The
    # validity runs on every web event (its properties): an Arrow UDF, a batch per statement.
    spark.udf.register("cdp_json_valid", arrow_udf(spark_json.json_valid_batch, BooleanType()))
    spark.udf.register("cdp_json_extract_string", spark_json.json_extract_string, StringType())


def run_privacy_stage(
    spark: SparkSession,
    args: Sequence[str],
    *,
    extra: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
    vault: bool = False,
) -> DbtOutcome:
    """Register the functions on ``spark`` (raises if they cannot be), then ``dbt <args>``.

    ``vault``: the vault stage (its target, and the vault seal registered too), as ``cdp
    build`` runs the vault models after the privacy stage on DuckDB.
    """
    spark_udf.register(spark, environ=environ, seal=vault)
    register_normalisers(spark)
    return dbt_invoke.invoke(
        [*args, "--target", VAULT_TARGET if vault else PRIVACY_TARGET],
        extra=extra,
        project_dir=str(paths.project_dir()),
    )


def workdir_settings(workdir: Path) -> dict[str, str]:
    """The session's warehouse and metastore in ``workdir`` (profiles.yml: the CDP_SPARK_* paths)."""
    return {
        "spark.sql.warehouse.dir": str(workdir / "spark-warehouse"),
        "spark.hadoop.javax.jdo.option.ConnectionURL": (
            f"jdbc:derby:;databaseName={workdir / 'metastore_db'};create=true"
        ),
    }


def dump_tables(spark: SparkSession, databases: Sequence[str], folder: Path) -> list[str]:
    """Every table and view of ``databases`` written to ``folder/<database>.<table>.parquet``.

    Through Arrow in Python (no SQL reads or writes a file), so another process (the
    comparison with DuckDB) reads what the build made without a second Spark session.
    """
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for database in databases:
        for row in spark.sql(f"show tables in `{database}`").collect():
            # a session's view (dbt-spark's incremental <model>__dbt_tmp): listed in every database
            if row.isTemporary:
                continue
            name = f"{database}.{row.tableName}"
            pq.write_table(
                spark.table(f"`{database}`.`{row.tableName}`").toArrow(), folder / f"{name}.parquet"
            )
            written.append(name)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """``cdp spark-build``: load a landing zone into Spark and build the ported part.

    Needs .venv-spark (pyspark, dbt-spark) and the jar (``make spark-jar``).
    """
    parser = argparse.ArgumentParser(
        prog="cdp spark-build",
        description="Load the DuckDB landing zone into a local Spark session and build the "
        "seeds and the models ported to Spark (privacy stage, then vault stage). The JVM reads the master key "
        "from the file named by CDP_MASTER_KEY_FILE.",
    )
    parser.add_argument("--raw-db", type=Path, default=paths.raw_db(), help="landing zone")
    parser.add_argument("--workdir", type=Path, required=True, help="warehouse, metastore, target")
    parser.add_argument("--dump", type=Path, help="write every built relation here as Parquet")
    parser.add_argument("--vars", default=None, help="dbt --vars (e.g. \"{as_of: '...'}\")")
    parser.add_argument(
        "--audit",
        type=Path,
        help="leave the key-leak audit's trail here: the event log and tables uncompressed, "
        "Spark's log, EXPLAIN of the models that call a keyed function (cdp.spark_audit)",
    )
    parser.add_argument(
        "--models",
        nargs="+",
        choices=PORTED_MODELS,
        default=list(PORTED_MODELS),
        metavar="MODEL",
        help="build only these of the ported models (default: all of them)",
    )
    parser.add_argument(
        "--skip-tests",
        action="store_true",
        help="build the models without their data tests (default: each stage runs its tests, "
        "and a failing test fails the build)",
    )
    parser.add_argument(
        "--full-refresh",
        action="store_true",
        help="rebuild the incremental models whole (dbt --full-refresh); without it a build over "
        "a workdir that holds them runs them incrementally (docs/decisions.md, 91)",
    )
    args = parser.parse_args(argv)
    from py4j.protocol import Py4JError, Py4JNetworkError

    workdir = args.workdir.resolve()
    conf, options = workdir_settings(workdir), ""
    if args.audit:
        audit = args.audit.resolve()
        conf, options = {**conf, **spark_audit.session_conf(audit)}, spark_audit.java_options(audit)
    spark = start_session(workdir, conf=conf, java_options=options)
    if not args.audit:
        spark.sparkContext.setLogLevel("ERROR")
    try:
        # The functions first (their check reads the key as the JVM does): a key the JVM
        # refuses stops the build before anything is loaded or written.
        spark_udf.register(spark)
        started = time.perf_counter()
        counts = load_landing(spark, args.raw_db)
        print(
            f"cdp: loaded {sum(counts.values())} rows into {len(counts)} Spark tables "
            f"in {time.perf_counter() - started:.1f} s"
        )
        return run_stages(spark, workdir, args)
    except (
        spark_udf.SparkRegistrationError,
        KeyConfigError,
        SparkLoadError,
        spark_audit.AuditIncomplete,
    ) as exc:
        print(str(exc), file=sys.stderr)
        return 2
    # the JVM is gone (it exits on OutOfMemoryError: spark_udf); py4j's reconnect attempt then
    # raises ConnectionRefusedError
    except (Py4JNetworkError, ConnectionError):
        print(
            "cdp: the Spark JVM stopped during the build; its last message, if it left one, "
            "is above (`java.lang.OutOfMemoryError: Java heap space` there: the driver's heap "
            "is too small for this landing zone)",
            file=sys.stderr,
        )
        return 2
    finally:
        # a JVM that is gone has nothing left to stop
        with contextlib.suppress(Py4JError, ConnectionError):
            spark.stop()


def drop_keyed_functions(spark: SparkSession) -> None:
    """Take the keyed functions out of the session: the analytics stage runs without them, as it
    runs without the key on DuckDB (a model of that stage calling one fails there too)."""
    for name in spark_udf.JAVA_CLASSES:
        spark.sql(f"drop temporary function if exists {name}")


#: Data tests that do not run on Spark, and why; what checks their property there instead is in
#: docs/portability.md, "Data tests on Spark" (pytests/test_spark_tests.py: they run, and pass,
#: on DuckDB's build of the same landing zone, which every Spark relation equals row for row).
DUCKDB_ONLY_TESTS: Final[dict[str, str]] = {
    # reads DuckDB's catalog (duckdb_databases(), duckdb_columns(), duckdb_views()) and parses
    # views back with DuckDB's parser
    "assert_no_unkeyed_hash_of_identifiers": "reads DuckDB's catalog and parser",
    # compares DuckDB's recursive implementation with the portable recursion: Spark's WITH
    # RECURSIVE runs neither (UNION ALL only, no aggregate over the recursive reference), and
    # spark__identity_connected_components iterates on a model's materialised graph
    "assert_identity_connected_components_implementations_agree": "recursive CTEs",
    # recomputes the incremental components from scratch: on Spark int_identity_components is a
    # table computed from scratch on every build (no incremental path), by that same iteration
    "assert_identity_components_match_a_full_recomputation": "no incremental path on Spark",
}
_STAGE_ORDER: Final = {"privacy": 0, "analytics": 1, "vault": 2}


def stage_tests(manifest_path: Path, models: Sequence[str]) -> dict[str, list[str]]:
    """stage -> the names of the data tests a Spark build runs in it, after that stage's models.

    A data test runs when it reads one of ``models`` or a seed (dbt's eager selection, as
    ``cdp build --select`` chooses on DuckDB) and every model it reads is one of ``models`` (or
    ephemeral: inlined; so with ``--models`` a test of a model the build does not make is left
    out, where it could only fail), or reads no model at all (a singular test of
    the project's catalogue: every build runs it), in the stage where the last of its parents
    is built (a source or a seed: the privacy stage; no parent: by its tags, as the stages'
    selectors place it on DuckDB; pytests/test_spark_tests.py compares the two). Unit tests are
    not data tests (left out); nor are :data:`DUCKDB_ONLY_TESTS`.
    """
    nodes = json.loads(manifest_path.read_text(encoding="utf-8"))["nodes"]
    chosen = {f"model.cdp.{m}" for m in models}
    models_of = {k for k, n in nodes.items() if n["resource_type"] == "model"}

    def ephemeral(unique_id: str) -> bool:
        return bool(nodes[unique_id]["config"].get("materialized") == "ephemeral")

    found: dict[str, list[str]] = {}
    for node in nodes.values():
        if node["resource_type"] != "test" or node["name"] in DUCKDB_ONLY_TESTS:
            continue
        parents = node["depends_on"]["nodes"]
        if not parents:
            found.setdefault(_node_stage(node), []).append(node["name"])
            continue
        if not any(p in chosen or p.startswith("seed.") for p in parents):
            continue
        # a model it reads that this build does not make (--models)
        if any(p not in chosen and p in models_of and not ephemeral(p) for p in parents):
            continue
        stages_of = [_node_stage(nodes[p]) for p in parents if p in models_of]
        stage = max(stages_of, key=_STAGE_ORDER.__getitem__, default="privacy")
        found.setdefault(stage, []).append(node["name"])
    return {stage: sorted(names) for stage, names in found.items()}


def failed_tests(outcome: DbtOutcome) -> list[str]:
    """``name (status: message)`` of every node of a dbt command that failed or erred."""
    results = getattr(outcome.result, "results", None) or []
    named = []
    for result in results:
        status = str(getattr(result.status, "value", result.status))
        if status in ("fail", "error"):
            named.append(f"{result.node.name} ({status}: {result.message})")
    return named


def run_stages(spark: SparkSession, workdir: Path, args: argparse.Namespace) -> int:
    """The seeds, then the selected models stage by stage (privacy, analytics, vault), each
    stage's dbt artefacts in its own folder; with ``--audit``, each keyed model explained as
    it runs (:class:`cdp.spark_audit.PlanRecorder`), checked after each stage.

    Each stage is one ``dbt build`` of its models and the data tests :func:`stage_tests` gives
    it (``--indirect-selection empty``: no other test; unit tests excluded): a failing test
    fails the build, named on stderr, and skips the models downstream of it."""
    target = workdir / "target"
    dbt_vars = ["--vars", args.vars] if args.vars else []
    refresh = ["--full-refresh"] if getattr(args, "full_refresh", False) else []

    def extra(stage: str) -> list[str]:
        path = stage_target_path(target, stage)
        return ["--target-path", str(path), "--log-path", str(workdir / "logs")]

    outcome = run_privacy_stage(spark, ["seed", *dbt_vars], extra=extra("privacy"))
    if not outcome.success:
        print(outcome.output[-6000:], file=sys.stderr)
        return 1
    manifest = stage_target_path(target, "privacy") / "manifest.json"
    stage_of = model_stages(manifest, args.models)
    tests_of = {} if args.skip_tests else stage_tests(manifest, args.models)
    recorder = None
    if args.audit:
        recorder = spark_audit.PlanRecorder(spark, args.audit.resolve())
        recorder.install(spark_audit.keyed_relations(manifest.parent))
    try:
        for stage in STAGES:
            models = [m for m in args.models if stage_of[m] == stage]
            tests = tests_of.get(stage, [])
            if not models and not tests:
                continue
            command = ["build", *dbt_vars, *refresh, "--select", *models, *tests]
            command += ["--indirect-selection", "empty", "--exclude-resource-type", "unit_test"]
            if stage == "analytics":
                drop_keyed_functions(spark)
                outcome = dbt_invoke.invoke(
                    [*command, "--target", ANALYTICS_TARGET],
                    extra=extra(stage),
                    project_dir=str(paths.project_dir()),
                )
            else:
                outcome = run_privacy_stage(
                    spark, command, extra=extra(stage), vault=stage == "vault"
                )
            if not outcome.success:
                print(outcome.output[-6000:], file=sys.stderr)
                failed = failed_tests(outcome)
                if failed:
                    print(
                        f"cdp: the {stage} stage failed on Spark: " + "; ".join(failed),
                        file=sys.stderr,
                    )
                return 1
            if recorder is not None:
                recorder.check(stage_target_path(target, stage))
    finally:
        if recorder is not None:
            recorder.uninstall()
    if args.dump:
        databases = [
            *(
                d
                for d in (*BUILT_DATABASES, *MART_DATABASES)
                if spark.catalog.databaseExists(d)  # --models
            ),
            *sorted({raw_database(s) for s, _ in tables_to_load(args.raw_db)}),
        ]
        dump_tables(spark, databases, args.dump)
    return 0


if __name__ == "__main__":
    sys.exit(main())
