"""The keyed functions on Apache Spark: a JVM jar, registered and checked from Python.

On DuckDB the plugin registers Python functions whose keys live in a closure
(:mod:`cdp.plugin`). On Spark the rows are in the JVM, so the same functions
are Hive ``GenericUDF``\\ s in Java (``spark/src/cdp/spark/``, compiled by
``make spark-jar`` into :data:`JAR`):

==========================  ==========================================
SQL name                    Java class
==========================  ==========================================
``cdp_pseudonym_<domain>``  ``cdp.spark.PseudonymUDF$<Domain>`` (one per ``cdp.keys.DOMAINS``)
``cdp_key_version``         ``cdp.spark.KeyVersionUDF``
``cdp_vault_seal``          ``cdp.spark.VaultSealUDF`` (the vault stage only: ``seal=True``)
==========================  ==========================================

``cdp_pseudonym_<domain>(id_type, value)`` is :func:`cdp.pseudonym.pseudonym`
under :func:`cdp.keys.pseudonym_key` bit for bit (NULL in, NULL out), and
``cdp_vault_seal(table, owner, kind, value)`` is
:meth:`cdp.vault.VaultCipher.seal` (deterministic nonces bit for bit; names get a
random nonce), so :meth:`~cdp.vault.VaultCipher.unseal` opens it. The JVM
derives the domain key itself, with the HKDF of :mod:`cdp.keys`, from the
owner-only file named by ``CDP_MASTER_KEY_FILE`` in *its own* environment,
which it inherits when it starts (on a cluster every executor needs it, e.g.
``spark.executorEnv.CDP_MASTER_KEY_FILE``: a path, not a secret). The key
never passes through SQL, a Spark setting or a function argument, so no
statement, plan, event log, log line or metastore entry can hold it.
``CDP_MASTER_KEY`` (the secret in a variable) is refused on Spark, here and in
the JVM: every process the JVM starts, Python workers included, would inherit
it.

:func:`register` checks the lockdown and the jar, creates the functions as temporary functions
of the session and runs :func:`self_check_sql`: known answers on a probe
value, computed in Python from the same key file, compared with what the
functions return in a Spark task. Any failure raises
:class:`SparkRegistrationError` (or :class:`cdp.keys.KeyConfigError` for the
key itself): a build must not go on without the functions. The statements are
plain SQL (:func:`registration_sql`, :func:`self_check_sql`), so a Thrift
server session can run the same ones; they hold no key material, only the
probe's pseudonyms (HMACs of a public string).

:func:`local_session` starts the local ``SparkSession`` the tests and the
benchmark use: ``local[2]``, Hive support (a temporary function of a Java
class needs it; dbt-spark's ``session`` method enables it too), the warehouse,
metastore and Derby log in a folder of the caller's.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from cdp import keys, paths
from cdp.keys import DOMAINS, KeyConfigError, MasterKey, pseudonym_key
from cdp.plugin import (
    _PROBE_TYPE,
    _PROBE_VALUE,
    KEY_VERSION_FUNCTION,
    PSEUDONYM_FUNCTIONS,
    SEAL_FUNCTION,
)
from cdp.pseudonym import pseudonym
from cdp.vault import VaultCipher

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: Where ``make spark-jar`` writes the compiled functions (git-ignored).
JAR: Final = paths.PROJECT_ROOT / "build" / "spark" / "cdp-spark-udf.jar"

#: SQL name -> Java class, for every keyed function.
JAVA_CLASSES: Final[dict[str, str]] = {
    **{PSEUDONYM_FUNCTIONS[d]: f"cdp.spark.PseudonymUDF${d.capitalize()}" for d in DOMAINS},
    KEY_VERSION_FUNCTION: "cdp.spark.KeyVersionUDF",
}
#: The session extension that locks SQL out of the file system (``spark.sql.extensions``).
LOCKDOWN_CLASS: Final = "cdp.spark.Lockdown"
#: A statement the lockdown must refuse (``java_method``: any static Java method); if it runs,
#: the extension is not active (Spark only warns when it cannot load an extension).
LOCKDOWN_PROBE: Final = "select java_method('java.lang.Math', 'abs', -1) as cdp_lockdown_probe"
#: The vault seal's Java class (registered with ``seal=True``: the vault stage).
SEAL_CLASS: Final = "cdp.spark.VaultSealUDF"
_SEAL_PROBE_TABLE: Final = "vault_identifiers"  # deterministic nonce: a known answer

SPARK_KEY_HINT: Final = (
    f"on Spark the master key is read only from a file: put it in an owner-only file "
    f"(chmod 600), set {keys.ENV_KEY_FILE} to its path before Spark starts, and unset "
    f"{keys.ENV_KEY}"
)

_CDP_MESSAGE = re.compile(r"cdp: [^\n]*?(?=\s+SQLSTATE:|\n|$)")


class SparkRegistrationError(RuntimeError):
    """The keyed functions could not be registered on Spark, or failed their self-check.

    The message says why; it never holds key material (the JVM's own messages
    and the statements hold none).
    """


# --------------------------------------------------------------------------- the key


def master_key_for_spark(environ: Mapping[str, str] | None = None) -> MasterKey:
    """The master key as the JVM will read it: from ``CDP_MASTER_KEY_FILE`` only.

    Validated as :func:`cdp.keys.load_master_key` validates it (same messages).
    """
    env = os.environ if environ is None else environ
    if env.get(keys.ENV_KEY, "").strip():
        raise KeyConfigError(f"{keys.ENV_KEY} is set: {SPARK_KEY_HINT}")
    if not env.get(keys.ENV_KEY_FILE, "").strip():
        raise KeyConfigError(f"{keys.ENV_KEY_FILE} is not set: {SPARK_KEY_HINT}")
    return keys.load_master_key(env)


def expected_probes(master: MasterKey) -> dict[str, str]:
    """What each keyed function must return on the probe: HMACs of a public string."""
    out = {
        PSEUDONYM_FUNCTIONS[d]: pseudonym(
            pseudonym_key(master, d), master.version, _PROBE_TYPE, _PROBE_VALUE
        )
        for d in DOMAINS
    }
    return {name: value for name, value in out.items() if value is not None}


# --------------------------------------------------------------------------- SQL


def _literal(text: str) -> str:
    """A Spark SQL string literal of a value without quotes or backslashes."""
    if "'" in text or "\\" in text:
        raise ValueError("not a plain literal")
    return f"'{text}'"


def _classes(seal: bool) -> dict[str, str]:
    return {**JAVA_CLASSES, SEAL_FUNCTION: SEAL_CLASS} if seal else dict(JAVA_CLASSES)


def registration_sql(*, seal: bool = False) -> list[str]:
    """One ``create or replace temporary function`` per keyed function.

    No ``add jar``: the jar is on the class path from the session's start (``spark.jars``,
    :func:`session_settings`; a Thrift server's ``--jars``), and the lockdown refuses
    ``add jar`` (SQL could otherwise load any code into the JVM).
    """
    return [
        f"create or replace temporary function {name} as '{cls}'"
        for name, cls in _classes(seal).items()
    ]


def expected_seal(master: MasterKey) -> bytes:
    """What ``cdp_vault_seal`` must return on the probe (an identifier: deterministic)."""
    owner = expected_probes(master)[PSEUDONYM_FUNCTIONS["identity"]]
    cipher = VaultCipher.from_master(master)
    return cipher.seal(_SEAL_PROBE_TABLE, owner, _PROBE_TYPE, _PROBE_VALUE, deterministic=True)


def self_check_sql(master: MasterKey, *, seal: bool = False) -> str:
    """One statement that returns ``'ok'`` or raises a ``cdp: ...`` error.

    The probe's columns depend on ``range``'s ``id``, so Spark cannot fold the
    calls into constants on the driver: they run in a task, where the executor
    derives its own key.
    """
    expected = expected_probes(master)
    version = master.version_label
    same = "\n            and ".join(
        f"{name}(id_type, value) = {_literal(expected[name])}" for name in expected
    )
    nulls = "\n            and ".join(
        f"{name}(id_type, no_value) is null and {name}(no_value, value) is null"
        for name in expected
    )
    sealing = ""
    if seal:
        owner = _literal(expected[PSEUDONYM_FUNCTIONS["identity"]])
        call = f"{SEAL_FUNCTION}({_literal(_SEAL_PROBE_TABLE)}, {owner}, id_type"
        sealing = f"""
        when not (hex({call}, value)) = {_literal(expected_seal(master).hex().upper())})
        then raise_error(
            'cdp: {SEAL_FUNCTION} on Spark does not seal as cdp.vault does under the same key'
        )"""
        nulls += f"\n            and {call}, no_value) is null"
    return f"""
with probe as (
    select
        if(id = 0, {_literal(_PROBE_TYPE)}, null) as id_type,
        if(id = 0, {_literal(_PROBE_VALUE)}, null) as value,
        if(id = 0, null, 'x') as no_value
    from range(1)
)
select
    case
        when not ({KEY_VERSION_FUNCTION}() = {_literal(version)}) then raise_error(
            'cdp: cdp_key_version() on Spark is not {version}: the JVM reads {keys.ENV_KEY_VERSION} '
            || 'from its own environment, fixed when it started'
        )
        when not (
            {same}
        ) then raise_error(
            'cdp: the keyed functions on Spark compute other pseudonyms than Python under '
            || '{keys.ENV_KEY_FILE}: the JVM reads another key file (its environment is fixed '
            || 'when it starts; on a cluster each executor reads its own)'
        ){sealing}
        when not (
            {nulls}
        ) then raise_error('cdp: the keyed functions on Spark do not return NULL for NULL')
        else 'ok'
    end as cdp_self_check
from probe
"""


# --------------------------------------------------------------------------- the lockdown


def session_settings(jar: Path | str = JAR) -> dict[str, str]:
    """The settings every Spark session of the project starts with (profiles.yml says the same).

    Static settings (SQL cannot change them): the jar on the driver's and executors' class
    path (``spark.jars``; so no ``add jar`` is needed, and the lockdown refuses it) and the
    lockdown extension. Runtime ones, which the lockdown stops SQL from changing:
    ``spark.sql.runSQLOnFiles=false`` (a second wall: ``select * from text.`<path>```
    fails to resolve at all), the session time zone UTC (DuckDB's timestamps are naive:
    Spark's ``timestamp`` then reads them as UTC) and Parquet as the default table format.
    """
    return {
        "spark.jars": str(Path(jar).expanduser().resolve()),
        "spark.sql.extensions": LOCKDOWN_CLASS,
        "spark.sql.runSQLOnFiles": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.sources.default": "parquet",
    }


def check_lockdown(spark: SparkSession) -> None:
    """Raise :class:`SparkRegistrationError` unless the session refuses SQL that reaches Java."""
    try:
        spark.sql(LOCKDOWN_PROBE).collect()
    except Exception as exc:
        reason = cdp_error_message(exc)
        if reason is not None and "may not" in reason:
            return
        raise SparkRegistrationError(
            "cdp: the Spark lockdown check failed unexpectedly: " + (reason or type(exc).__name__)
        ) from None
    raise SparkRegistrationError(
        f"cdp: the Spark session is not locked down: SQL can read the key file. Start it "
        f"with spark.sql.extensions={LOCKDOWN_CLASS} and spark.jars naming {JAR.name} "
        f"(cdp.spark_udf.session_settings; the spark target of profiles.yml sets both)"
    )


# --------------------------------------------------------------------------- registration


def cdp_error_message(exc: BaseException) -> str | None:
    """The first ``cdp: ...`` line in a Spark error or its causes (the JVM's own words)."""
    seen: list[object] = []
    current: object = exc
    while current is not None and current not in seen and len(seen) < 20:
        seen.append(current)
        found = _CDP_MESSAGE.search(str(current))
        if found:
            return found.group(0)
        current = getattr(current, "_cause", None) or getattr(current, "__cause__", None)
    return None


def _run(spark: SparkSession, statement: str, what: str) -> list[Any]:
    try:
        return list(spark.sql(statement).collect())
    except Exception as exc:
        reason = cdp_error_message(exc)
        if reason is None:
            condition = getattr(exc, "getCondition", lambda: None)()
            reason = f"Spark refused it ({condition or type(exc).__name__})"
        raise SparkRegistrationError(
            f"cdp: could not {what} the keyed functions on Spark: {reason}"
        ) from None


def _jar_loaded(spark: SparkSession, jar: Path) -> bool:
    listed = [str(row[0]) for row in spark.sql("list jar").collect()]
    return any(entry.rsplit("/", 1)[-1] == jar.name for entry in listed)


def register(
    spark: SparkSession,
    jar: Path | str | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    seal: bool = False,
) -> None:
    """Register the keyed functions on ``spark`` (idempotent) and check them; raise if not ok.

    Refused in a session without the lockdown (:func:`check_lockdown`): the functions need
    the key file readable by the JVM, so SQL in that JVM must not be able to read files.

    ``environ`` is where Python reads the key (default ``os.environ``); the JVM
    reads its own environment, so the self-check also proves that both read
    the same key file and version. ``seal``: ``cdp_vault_seal`` too (the vault stage).
    """
    master = master_key_for_spark(environ)
    check_lockdown(spark)
    check = self_check_sql(master, seal=seal)
    del master
    path = Path(JAR if jar is None else jar).expanduser().resolve()
    if not path.is_file():
        raise SparkRegistrationError(
            f"cdp: the keyed functions' jar {path} does not exist: build it with `make spark-jar`"
        )
    if not _jar_loaded(spark, path):
        raise SparkRegistrationError(
            f"cdp: the session was started without the keyed functions' jar: start it with "
            f"spark.jars naming {path} (cdp.spark_udf.session_settings)"
        )
    statements = registration_sql(seal=seal)
    for statement in statements:
        _run(spark, statement, "register")
    rows = _run(spark, check, "check")
    if [tuple(row) for row in rows] != [("ok",)]:
        raise SparkRegistrationError(
            "cdp: the keyed functions' self-check on Spark returned no 'ok' row"
        )


# --------------------------------------------------------------------------- a local session


def local_session(
    workdir: Path,
    *,
    app_name: str = "cdp",
    conf: Mapping[str, str] | None = None,
    java_options: str = "",
    lockdown: bool = True,
) -> SparkSession:
    """A local ``SparkSession`` (``local[2]``, 1 GiB, Hive support) keeping its files in ``workdir``.

    With :func:`session_settings` (the jar and the lockdown), unless ``lockdown`` is false
    (only the tests' planted weak configuration does that; ``conf`` overrides both).

    The warehouse, the Derby metastore and ``derby.log`` go to ``workdir``. The
    JVM starts here with this process's environment: ``CDP_MASTER_KEY`` is
    refused (see the module docs). If a session is already running in this
    process, Spark returns it and the settings that need a new JVM do not apply.
    """
    if os.environ.get(keys.ENV_KEY, "").strip():
        raise KeyConfigError(f"{keys.ENV_KEY} is set: {SPARK_KEY_HINT}")
    from pyspark.sql import SparkSession

    # Python UDFs (the normalisers) run in workers of this interpreter, which has cdp (pyspark
    # reads the variable, not the spark.pyspark.python setting, when the context starts).
    os.environ["PYSPARK_PYTHON"] = sys.executable
    workdir.mkdir(parents=True, exist_ok=True)
    metastore = workdir / "metastore_db"
    # An OutOfMemoryError can kill one of Spark's own threads (the local scheduler's, decision 90):
    # its job then waits for ever. The JVM exits instead, so the build fails and says why.
    options = f"-Dderby.system.home={workdir} -XX:+ExitOnOutOfMemoryError {java_options}".strip()
    builder = (
        SparkSession.builder.master("local[2]")
        .appName(app_name)
        .config("spark.driver.memory", "1g")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.sql.warehouse.dir", str(workdir / "spark-warehouse"))
        .config(
            "spark.hadoop.javax.jdo.option.ConnectionURL",
            f"jdbc:derby:;databaseName={metastore};create=true",
        )
        .config("spark.driver.extraJavaOptions", options)
    )
    settings = session_settings() if lockdown else {}
    for name, value in {**settings, **(conf or {})}.items():
        builder = builder.config(name, value)
    return builder.enableHiveSupport().getOrCreate()
