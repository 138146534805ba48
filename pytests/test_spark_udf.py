"""The keyed functions on Spark (issue 19, docs/decisions.md 63), through a real local
SparkSession and the real jar (``make spark-jar``); run by ``make test-spark`` only.

* The Java functions give :func:`cdp.pseudonym.pseudonym` bit for bit on 20,000+
  hostile values (hypothesis text: any code point, NUL, combining marks, very
  long strings, empty string, NULL) in every domain; a function under the
  wrong HKDF ``info`` is caught by the same comparison.
* The JVM validates the key file as Python does (the same reasons, rule for rule).
* Registration fails loudly: a missing, placeholder, short, group-readable or
  other key file for the JVM, a key in ``CDP_MASTER_KEY``, another key version,
  a missing jar. Without the self-check a wrong key would go through unnoticed.
* ``cdp_vault_seal`` writes what ``cdp.vault.VaultCipher`` writes, and it opens there.
* The key-leak scan: no spelling of the master key or of a derived key in the
  SQL text, ``EXPLAIN EXTENDED``, the event log, the session's log and
  configuration, the warehouse or the metastore; the same scan finds the key
  when Spark's builtin ``hmac`` is given it as a literal.

Without Java, pyspark or the jar these tests fail (they are not skipped).
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdp import keys, spark_udf
from cdp.keys import DOMAINS, ENV_KEY, ENV_KEY_FILE, ENV_KEY_VERSION, MasterKey, pseudonym_key
from cdp.plugin import KEY_VERSION_FUNCTION, PSEUDONYM_FUNCTIONS, SEAL_FUNCTION
from cdp.pseudonym import pseudonym
from cdp.spark_audit import LOG4J
from cdp.spark_udf import SparkRegistrationError
from cdp.vault import VaultCipher, VaultTampered
from conftest import environment
from key_scan import files_under, key_markers, scan_files
from test_hostile import building_blocks, unicode_text, very_long

pytestmark = pytest.mark.spark

VERSION = "3"  # not the default, so a version read from the wrong place shows
HOSTILE_COUNT = 20_000
ID_TYPES = ("email", "phone", "customer_id", "x:y", "", "\u00e9\U0001f511\x00")


# --------------------------------------------------------------------------- the session


def _require_spark() -> None:
    """Fail (never skip) when what the Spark tests need is missing."""
    if shutil.which("java") is None:
        pytest.fail(
            "java not found: the Spark tests need a JDK 17 or newer (on Debian: apt-get install "
            "default-jdk-headless); run them with make test-spark",
            pytrace=False,
        )
    try:
        import pyspark  # noqa: F401
    except ImportError:
        pytest.fail(
            "pyspark is not installed here: run the Spark tests with make test-spark "
            "(it builds .venv-spark from requirements-spark.txt)",
            pytrace=False,
        )
    if not spark_udf.JAR.is_file():
        pytest.fail(f"{spark_udf.JAR} is missing: make spark-jar builds it", pytrace=False)


def _write_key(path: Path, data: bytes, mode: int = 0o600) -> None:
    path.write_bytes(data)
    path.chmod(mode)


@dataclass
class Scene:
    """One local SparkSession with the functions registered, and where it writes."""

    spark: Any
    root: Path
    key_file: Path
    good_copy: Path  # the same key, for Python, while the JVM's file is tampered with
    master: MasterKey
    statements: list[str] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        """What Python reads the key from (the JVM has its own copy of the environment)."""
        return {ENV_KEY_FILE: str(self.key_file), ENV_KEY_VERSION: VERSION}

    def sql(self, text: str, **args: object) -> list[Any]:
        self.statements.append(text)
        return list(self.spark.sql(text, args=args or None).collect())

    def register(self, environ: dict[str, str] | None = None, *, seal: bool = False) -> None:
        env = self.env if environ is None else environ
        self.statements += [
            *spark_udf.registration_sql(seal=seal),
            spark_udf.self_check_sql(self.master, seal=seal),
        ]
        spark_udf.register(self.spark, environ=env, seal=seal)


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    _require_spark()
    root = tmp_path_factory.mktemp("spark")
    key_dir = root / "key"
    key_dir.mkdir(mode=0o700)
    key_file = key_dir / "master.key"
    good_copy = key_dir / "python-copy.key"
    secret = (secrets.token_urlsafe(48) + "\n").encode()
    _write_key(key_file, secret)
    _write_key(good_copy, secret)
    (root / "events").mkdir()
    log4j = root / "log4j2.properties"
    log4j.write_text(LOG4J.format(log=root / "spark.log"))
    env = {ENV_KEY_FILE: str(key_file), ENV_KEY_VERSION: VERSION}
    with environment(env, drop=[ENV_KEY]):
        master = keys.load_master_key()
        spark = spark_udf.local_session(
            root / "session",
            app_name="cdp-spark-udf-tests",
            conf={
                "spark.eventLog.enabled": "true",
                "spark.eventLog.dir": str(root / "events"),
                # Uncompressed, so the scan reads what they hold (zstd and snappy would hide
                # a key from a byte search: the scan would pass without looking).
                "spark.eventLog.compress": "false",
                "spark.sql.parquet.compression.codec": "uncompressed",
            },
            java_options=f"-Dlog4j2.configurationFile={log4j}",
        )
        scene = Scene(spark, root, key_file, good_copy, master)
        try:
            scene.register()
            yield scene
        finally:
            spark.stop()


@contextmanager
def jvm_key_file(scene: Scene, data: bytes | None, mode: int = 0o600) -> Iterator[None]:
    """The JVM's key file replaced (``None``: removed) inside the block, then restored and the
    functions registered again."""
    saved = scene.key_file.read_bytes()
    scene.key_file.unlink()
    if data is not None:
        _write_key(scene.key_file, data, mode)
    try:
        yield
    finally:
        scene.key_file.unlink(missing_ok=True)
        _write_key(scene.key_file, saved)
        scene.register()


# --------------------------------------------------------------------------- bit for bit


def hostile_values(count: int) -> list[str | None]:
    """``count`` distinct hostile strings: the edge cases, what hypothesis draws, and variants."""
    found: dict[str | None, None] = dict.fromkeys(
        [
            None,
            "",
            "\x00",
            "a\x00b",
            "\x00" * 70,
            "e\u0301" * 40,
            "\U0010fffd",
            "é" * 64,
            "🔑" * 20_000,
            "x" * 100_000,
            "\u202eevil",
            "' or 1=1 --",
            "a" * 63,
            "a" * 64,
        ]
    )
    long_ones = st.lists(very_long, min_size=1, max_size=1)
    batch = st.lists(st.one_of(unicode_text, building_blocks), min_size=100, max_size=100)

    # One search, never a loop of them: under CI hypothesis derandomizes (its "ci" profile),
    # so a second search draws exactly what the first did. Each example is a batch of 100
    # strings; twice the examples the count needs covers the repeats.
    @settings(
        max_examples=2 * -(-count // 100),
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(values=batch, long=long_ones)
    def draw(values: list[str], long: list[str]) -> None:
        if len(found) >= count:
            return
        found.update(dict.fromkeys(values))
        if len(found) < count // 10:  # a few dozen very long strings, not thousands
            found.update(dict.fromkeys(long))

    draw()
    # Hypothesis repeats itself (small strings, shrunk forms): what it drew is made up to
    # ``count`` with variants of its own strings around a NUL, a combining mark and a key emoji,
    # each distinct by a counter, so they stay hostile (and new to the function).
    drawn = [v for v in found if v]
    number = 0
    while len(found) < count and drawn:
        base = drawn[number % len(drawn)]
        found.update(dict.fromkeys([f"{base}\x00{number}", f"{number}\u0301{base}\U0001f511"]))
        number += 1
    if len(found) < count:
        pytest.fail(f"hypothesis drew {len(found)} distinct hostile strings, not {count}")
    return list(found)[:count]


@pytest.fixture(scope="module")
def hostile(scene: Scene) -> list[tuple[int, str | None, str | None]]:
    values = hostile_values(HOSTILE_COUNT)
    rows: list[tuple[int, str | None, str | None]] = [
        (i, ID_TYPES[i % len(ID_TYPES)], v) for i, v in enumerate(values)
    ]
    rows.append((len(rows), None, "an id type of NULL"))
    frame = scene.spark.createDataFrame(rows, "i long, id_type string, value string")
    # More partitions than cores: two tasks run at once, each with its own Mac.
    frame.repartition(8).createOrReplaceTempView("hostile")
    return rows


def _through_spark(scene: Scene, functions: dict[str, str]) -> dict[int, tuple[str | None, ...]]:
    calls = ", ".join(f"{name}(id_type, value)" for name in functions.values())
    return {row[0]: tuple(row[1:]) for row in scene.sql(f"select i, {calls} from hostile")}


def _mismatches(
    scene: Scene,
    rows: Sequence[tuple[int, str | None, str | None]],
    got: dict[int, tuple[str | None, ...]],
) -> list[tuple[int, str]]:
    derived = [pseudonym_key(scene.master, d) for d in DOMAINS]
    bad = []
    for i, id_type, value in rows:
        want = tuple(pseudonym(key, VERSION, id_type, value) for key in derived)
        if got.get(i) != want:
            bad.append((i, repr(value)[:60]))
    return bad


def test_pseudonyms_equal_python_bit_for_bit(
    scene: Scene, hostile: list[tuple[int, str | None, str | None]]
) -> None:
    values = {v for _, _, v in hostile}
    assert len(values) > HOSTILE_COUNT
    assert any(v is not None and len(v) >= 100_000 for v in values)
    assert any(v is not None and any(ord(c) > 0xFFFF for c in v) for v in values)
    assert any(v is not None and "\x00" in v for v in values)
    got = _through_spark(scene, {d: PSEUDONYM_FUNCTIONS[d] for d in DOMAINS})
    assert len(got) == len(hostile)
    assert _mismatches(scene, hostile, got) == []
    assert sum(1 for row in got.values() if row == (None, None, None)) == 2  # NULL value, NULL type


def test_a_function_under_another_info_string_is_caught(
    scene: Scene, hostile: list[tuple[int, str | None, str | None]]
) -> None:
    """The planted weak version: cdp_pseudonym_identity computed under the person domain's
    HKDF info (``cdp:pseudonym:person:v3``) — the comparison above rejects every row."""
    scene.sql(
        f"create or replace temporary function {PSEUDONYM_FUNCTIONS['identity']} "
        f"as '{spark_udf.JAVA_CLASSES[PSEUDONYM_FUNCTIONS['person']]}'"
    )
    try:
        got = _through_spark(scene, {d: PSEUDONYM_FUNCTIONS[d] for d in DOMAINS})
        assert len(_mismatches(scene, hostile, got)) == len(hostile) - 2  # all but the NULLs
    finally:
        scene.register()
    got = _through_spark(scene, {d: PSEUDONYM_FUNCTIONS[d] for d in DOMAINS})
    assert _mismatches(scene, hostile, got) == []


def test_key_version_and_argument_types(scene: Scene) -> None:
    from pyspark.errors import PySparkException

    assert scene.sql(f"select {KEY_VERSION_FUNCTION}()") == [(f"v{VERSION}",)]
    ident = PSEUDONYM_FUNCTIONS["identity"]
    for call, message in [
        (f"{ident}(1, 'x')", f"cdp: {ident} takes strings: cast argument 1 (int)"),
        (f"{ident}('x', current_date())", f"cdp: {ident} takes strings: cast argument 2 (date)"),
        (f"{ident}('x')", f"cdp: {ident} takes two arguments (id_type, value), not 1"),
    ]:
        with pytest.raises(PySparkException) as caught:
            scene.sql(f"select {call}")
        assert (spark_udf.cdp_error_message(caught.value) or "").startswith(message)


def test_dbt_spark_session_cursor_sees_the_functions(scene: Scene) -> None:
    """dbt-spark's ``session`` method runs each statement on ``SparkSession.builder
    .getOrCreate()``: the session the functions were registered on, so a `cdp` command can
    register them before it runs dbt in-process; a second session does not see them."""
    from dbt.adapters.spark.session import Cursor

    cursor = Cursor()
    cursor.execute(f"select {PSEUDONYM_FUNCTIONS['identity']}('email', 'a@b.ru')")
    rows = cursor.fetchall()
    identity = pseudonym_key(scene.master, "identity")
    assert rows is not None
    assert [tuple(r) for r in rows] == [(pseudonym(identity, VERSION, "email", "a@b.ru"),)]
    # Temporary functions belong to one session: another session (as each connection to a
    # Thrift server is, unless it runs in single-session mode) does not have them.
    from pyspark.errors import AnalysisException

    with pytest.raises(AnalysisException, match="UNRESOLVED_ROUTINE"):
        scene.spark.newSession().sql(f"select {PSEUDONYM_FUNCTIONS['identity']}('e', 'a')")


# --------------------------------------------------------------------------- the vault seal


def test_vault_seal_is_python_seal_and_opens_in_python(
    scene: Scene, hostile: list[tuple[int, str | None, str | None]]
) -> None:
    """Identifiers: the same bytes as VaultCipher.seal (deterministic nonce); names: a random
    nonce; every blob opens with VaultCipher.unseal for its row, and for no other row."""
    scene.register(seal=True)
    cipher = VaultCipher.from_master(scene.master)
    seal = SEAL_FUNCTION
    rows = scene.sql(
        f"""
        select i, value, k, t,
            {seal}('vault_identifiers', concat('owner-', i), k, value),
            {seal}('vault_customer_names', concat('owner-', i), t, value),
            {seal}('vault_customer_names', concat('owner-', i), t, value)
        from (
            select i, value, if(i % 2 = 0, 'email', 'phone') as k,
                if(i % 2 = 0, 'first_name', 'last_name') as t
            from hostile
            where i % 4 = 0
        )
        """
    )
    assert len(rows) > HOSTILE_COUNT // 4
    bad = []
    for i, value, kind, part, ident, name1, name2 in rows:
        owner = f"owner-{i}"
        if value is None:
            assert (ident, name1, name2) == (None, None, None)
            continue
        if bytes(ident) != cipher.seal("vault_identifiers", owner, kind, value):
            bad.append((i, "identifier bytes"))
        if cipher.unseal("vault_identifiers", owner, kind, bytes(ident)) != value:
            bad.append((i, "identifier unseal"))
        for blob in (name1, name2):
            opened = cipher.unseal(
                "vault_customer_names", owner, part, bytes(blob), deterministic=False
            )
            if opened != value:
                bad.append((i, "name unseal"))
        if bytes(name1)[:12] == bytes(name2)[:12]:
            bad.append((i, "name nonce repeated"))
    assert bad == []
    # Bound to its row: the blob of row 0 does not open as row 4's.
    first, other = rows[0], rows[1]
    with pytest.raises(VaultTampered):
        cipher.unseal("vault_identifiers", f"owner-{other[0]}", first[2], bytes(first[4]))
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import PySparkException

    with pytest.raises((PySparkException, Py4JJavaError)) as caught:
        scene.sql(f"select {seal}('customers', 'o', 'email', 'a@b.ru')")
    assert (spark_udf.cdp_error_message(caught.value) or "").startswith(
        "cdp: cdp_vault_seal: 'customers' is not a vault table"
    )


# --------------------------------------------------------------------------- the key's checks


def _weaker_reason(secret: bytes) -> str | None:
    """A validator without the template-word rule: what a careless port would be."""
    reason = keys._placeholder_reason(secret)
    return None if reason and reason.startswith("it is mostly words") else reason


KEY_EXAMPLES: list[bytes] = [
    b"",
    b"a" * 40,
    b"abcabcab" * 5,
    b"abcdefghijklmnopqrstuvwxyz0123456789",
    b"0123456789" * 4,
    b"your-key-here-your-key-here-your-key-here",
    b"changeme_CHANGEME.password-secret-example-123",
    b"\xff\xfe\xfd" + bytes(range(0, 250, 7)),
    "ключ-ключ-ключ-ключ-ключ-0123456789".encode(),
    "İİİİİİİİİİİİİİİİ-changeme-ΣΑΣ".encode(),
    b"\x85\xa0 \t\n" * 3 + b"placeholder" * 3,
    secrets.token_bytes(48),
    secrets.token_urlsafe(48).encode(),
]


def test_the_jvm_validates_the_key_as_python_does(scene: Scene) -> None:
    jvm_keys = scene.spark._jvm.cdp.spark.Keys

    def jvm_reason(secret: bytes) -> str | None:
        reason = jvm_keys.placeholderReason(bytearray(secret))
        return None if reason is None else str(reason)

    differ = [s for s in KEY_EXAMPLES if jvm_reason(s) != keys._placeholder_reason(s)]
    assert differ == []
    reasons = {keys._placeholder_reason(s) for s in KEY_EXAMPLES}
    assert len(reasons) >= 6  # every rule and an accepted key
    # The examples catch a validator that lacks a rule.
    assert [s for s in KEY_EXAMPLES if _weaker_reason(s) != keys._placeholder_reason(s)] != []

    @settings(max_examples=300, deadline=None, database=None)
    @given(
        secret=st.one_of(
            st.binary(min_size=30, max_size=80),
            st.lists(
                st.sampled_from(["key", "Secret", "-", "_", ".", " ", "1", "2", "3", "ab", "ö"]),
                min_size=8,
                max_size=40,
            ).map(lambda parts: "".join(parts).encode()),
            st.text(min_size=20, max_size=60).map(lambda s: s.encode()),
        )
    )
    def same(secret: bytes) -> None:
        assert jvm_reason(secret) == keys._placeholder_reason(secret), secret

    same()


# --------------------------------------------------------------------------- registration


@pytest.mark.parametrize(
    ("name", "data", "mode", "message"),
    [
        ("missing", None, 0o600, r"CDP_MASTER_KEY_FILE \(.*\) does not exist"),
        (
            "placeholder",
            b"your-key-here-changeme-placeholder-secret",
            0o600,
            r"looks like a placeholder .*mostly words",
        ),
        ("short", b"k9Qz-short-secret", 0o600, r"holds 17 bytes; at least 32 bytes"),
        ("group-readable", None, 0o640, r"accessible to group or others \(mode 0640\)"),
        ("another key", b"", 0o600, r"compute other pseudonyms than Python"),
    ],
)
def test_a_bad_key_file_for_the_jvm_stops_registration(
    scene: Scene, name: str, data: bytes | None, mode: int, message: str
) -> None:
    """Python reads a good copy; the JVM, its own file: the JVM's own check must stop it."""
    if name == "group-readable":
        data = scene.good_copy.read_bytes()
    if name == "another key":
        data = secrets.token_urlsafe(48).encode()
    python_env = {ENV_KEY_FILE: str(scene.good_copy), ENV_KEY_VERSION: VERSION}
    with jvm_key_file(scene, data, mode):
        with pytest.raises(SparkRegistrationError, match=message) as caught:
            spark_udf.register(scene.spark, environ=python_env)
        text = str(caught.value)
        assert scene.master.secret.decode() not in text
        if name == "another key":
            # The planted weak registration (no self-check) accepts the wrong key, and the
            # functions then silently compute other pseudonyms: what the self-check prevents.
            for statement in spark_udf.registration_sql():
                scene.sql(statement)
            got = scene.sql(f"select {PSEUDONYM_FUNCTIONS['identity']}('email', 'a@b.ru')")
            identity = pseudonym_key(scene.master, "identity")
            assert got[0][0] != pseudonym(identity, VERSION, "email", "a@b.ru")


def test_python_side_failures_are_clear(scene: Scene, tmp_path: Path) -> None:
    placeholder = tmp_path / "placeholder.key"
    _write_key(placeholder, b"your-key-here-your-key-here-your-key-here")
    cases: list[tuple[dict[str, str], type[Exception], str]] = [
        ({ENV_KEY_FILE: str(placeholder)}, keys.KeyConfigError, "looks like a placeholder"),
        ({ENV_KEY_FILE: str(tmp_path / "none.key")}, keys.KeyConfigError, "does not exist"),
        ({ENV_KEY: secrets.token_urlsafe(48)}, keys.KeyConfigError, "read only from a file"),
        ({}, keys.KeyConfigError, "CDP_MASTER_KEY_FILE is not set"),
        (
            {ENV_KEY_FILE: str(scene.good_copy), ENV_KEY_VERSION: "4"},
            SparkRegistrationError,
            r"cdp_key_version\(\) on Spark is not v4",
        ),
    ]
    for environ, error, message in cases:
        with pytest.raises(error, match=message):
            spark_udf.register(scene.spark, environ=environ)
    with pytest.raises(SparkRegistrationError, match=r"jar .* does not exist: build it"):
        spark_udf.register(scene.spark, jar=tmp_path / "missing.jar", environ=scene.env)
    scene.register()


# --------------------------------------------------------------------------- the key-leak scan


@dataclass
class Artifacts:
    """Everything a Spark session leaves that could hold key material."""

    scene: Scene

    def dump(self, name: str, text: str) -> None:
        folder = self.scene.root / "dumps"
        folder.mkdir(exist_ok=True)
        with (folder / name).open("a", encoding="utf-8") as handle:
            handle.write(text + "\n")

    def flush(self) -> None:
        """Wait until the event log has every event so far; dump SQL text and configuration."""
        spark = self.scene.spark
        spark.sparkContext._jsc.sc().listenerBus().waitUntilEmpty()
        self.dump("sql.txt", "\n;\n".join(self.scene.statements))
        conf = [f"{k}={v}" for k, v in spark.sparkContext.getConf().getAll()]
        conf += [f"{k}={v}" for k, v in spark.conf.getAll.items()]
        self.dump("conf.txt", "\n".join(sorted(conf)))

    def files(self) -> list[Path]:
        return files_under(self.scene.root, exclude=[self.scene.root / "key"])

    def sizes(self) -> dict[Path, int]:
        return {p: p.stat().st_size for p in self.files()}

    def scan(self, since: dict[Path, int] | None = None) -> tuple[list[Path], list[str]]:
        """(files scanned, 'file: marker' per hit); with ``since``, only what was added."""
        files = self.files()
        markers = key_markers(self.scene.master)
        return files, scan_files(files, markers, root=self.scene.root, since=since)


def _kinds(files: Sequence[Path], root: Path) -> set[str]:
    kinds = set()
    for path in files:
        rel = path.relative_to(root).as_posix()
        for kind, test in KINDS.items():
            if test(rel):
                kinds.add(kind)
    return kinds


KINDS: dict[str, Callable[[str], bool]] = {
    "event log": lambda rel: rel.startswith("events/"),
    "spark log": lambda rel: rel == "spark.log",
    "warehouse parquet": lambda rel: "spark-warehouse/" in rel and rel.endswith(".parquet"),
    "metastore": lambda rel: "metastore_db/" in rel,
    "explain": lambda rel: rel == "dumps/explain.txt",
    "sql text": lambda rel: rel == "dumps/sql.txt",
    "conf": lambda rel: rel == "dumps/conf.txt",
}


@pytest.fixture(scope="module")
def clean_scan(scene: Scene) -> tuple[Artifacts, list[Path], list[str]]:
    """The product's workload (a table of pseudonyms, a join, EXPLAIN EXTENDED, the function
    descriptions), then every artifact scanned: before any test plants a leak."""
    art = Artifacts(scene)
    frame = scene.spark.createDataFrame(
        [(i, f"user{i}@example.com") for i in range(500)], "i long, value string"
    )
    frame.createOrReplaceTempView("scan_source")
    ident, person = PSEUDONYM_FUNCTIONS["identity"], PSEUDONYM_FUNCTIONS["person"]
    query = f"""
        select
            i,
            {ident}('email', value) as identity_key,
            {person}('customer_id', cast(i as string)) as person_key,
            {PSEUDONYM_FUNCTIONS["partner"]}('email', value) as partner_key,
            {KEY_VERSION_FUNCTION}() as key_version
        from scan_source
    """
    scene.register(seal=True)
    scene.sql("create database if not exists cdp_scan")
    scene.sql(f"create table cdp_scan.pseudonyms using parquet as {query}")
    scene.sql(
        f"""create table cdp_scan.vault_identifiers using parquet as
        select identity_key, 'email' as id_type,
            {SEAL_FUNCTION}('vault_identifiers', identity_key, 'email', s.value) as sealed
        from cdp_scan.pseudonyms as p inner join scan_source as s on p.i = s.i"""
    )
    joined = f"""
        select count(*) from cdp_scan.pseudonyms as p
        inner join scan_source as s on p.identity_key = {ident}('email', s.value)
    """
    assert scene.sql(joined) == [(500,)]
    for statement in (query, joined):
        art.dump("explain.txt", str(scene.sql(f"explain extended {statement}")[0][0]))
    for name in PSEUDONYM_FUNCTIONS.values():
        rows = scene.sql(f"describe function extended {name}")
        art.dump("explain.txt", "\n".join(str(r[0]) for r in rows))
    art.flush()
    files, hits = art.scan()
    return art, files, hits


def test_no_key_material_anywhere_spark_writes(
    scene: Scene, clean_scan: tuple[Artifacts, list[Path], list[str]]
) -> None:
    _, files, hits = clean_scan
    assert hits == []
    # The scan looked where a leak would be: every kind of artifact, and they record the work.
    assert _kinds(files, scene.root) == set(KINDS)
    events = b"".join(p.read_bytes() for p in files if "events" in p.parts)
    assert PSEUDONYM_FUNCTIONS["identity"].encode() in events
    parquet = b"".join(p.read_bytes() for p in files if p.suffix == ".parquet")
    assert f"v{VERSION}_".encode() in parquet


def test_the_scan_finds_the_key_given_to_builtin_hmac(
    scene: Scene, clean_scan: tuple[Artifacts, list[Path], list[str]]
) -> None:
    """The weak configuration (Spark's builtin hmac with the domain key as a literal) computes
    the same pseudonyms and leaks the key into the SQL text, the plans and the event log."""
    art = clean_scan[0]
    before = art.sizes()
    identity = pseudonym_key(scene.master, "identity")
    weak = f"""
        select
            i,
            concat('v{VERSION}_', lower(hex(hmac(unhex('{identity.hex()}'), concat('email:', value)))))
                as identity_key
        from scan_source
    """
    ours = dict(
        scene.sql(f"select i, {PSEUDONYM_FUNCTIONS['identity']}('email', value) from scan_source")
    )
    assert dict(scene.sql(weak)) == ours  # the attack's premise: the same function
    art.dump("explain.txt", str(scene.sql(f"explain extended {weak}")[0][0]))
    art.flush()
    _, hits = art.scan(since=before)
    found = {hit.split(":", 1)[0] for hit in hits}
    assert {"dumps/sql.txt", "dumps/explain.txt"} <= found
    assert any(name.startswith("events/") for name in found), hits
    assert all("identity key" in hit for hit in hits)


def test_the_landing_zone_loads_in_batches_row_for_row(scene: Scene, tmp_path: Path) -> None:
    """cdp.spark_stage.load_landing copies each landing table in Arrow batches, the first
    replacing the table and the others appending (decision 86: a 100,000-customer landing zone
    loaded a table at a time ran out of the driver's heap). Seven rows in batches of three
    arrive whole, with their types and NULLs; an empty table arrives empty, of its shape; a
    second load replaces the first instead of adding to it."""
    import duckdb

    from cdp import spark_stage

    raw = tmp_path / "raw.duckdb"
    con = duckdb.connect(str(raw))
    try:
        con.execute("create schema loadtest")
        con.execute("create table loadtest.many (id varchar, seen_at timestamp, n bigint)")
        con.execute(
            "insert into loadtest.many select 'id-' || range, timestamp '2026-01-01 00:30:00' "
            "+ to_hours(range), case when range % 3 = 0 then null else range * 10 end "
            "from range(7)"
        )
        con.execute("create table loadtest.nothing (id varchar, n bigint)")
        want = sorted(
            con.execute(
                "select id, strftime(seen_at, '%Y-%m-%d %H:%M:%S'), n from loadtest.many"
            ).fetchall(),
            key=repr,
        )
    finally:
        con.close()
    for _ in range(2):
        counts = spark_stage.load_landing(scene.spark, raw, rows_per_batch=3)
        assert (counts["raw_loadtest.many"], counts["raw_loadtest.nothing"]) == (7, 0)
    got = scene.spark.sql(
        "select id, date_format(seen_at, 'yyyy-MM-dd HH:mm:ss'), n from raw_loadtest.many"
    ).collect()
    assert sorted((tuple(r) for r in got), key=repr) == want
    assert [r[0] for r in want if r[2] is None] == ["id-0", "id-3", "id-6"]
    nothing = scene.spark.table("raw_loadtest.nothing")
    assert nothing.count() == 0
    assert [(f.name, f.dataType.simpleString()) for f in nothing.schema.fields] == [
        ("id", "string"),
        ("n", "bigint"),
    ]
