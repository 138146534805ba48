"""Hostile input: every normaliser and pseudonym function, SQL against Python, bit for bit.

The SQL side is what staging runs: the functions the dbt-duckdb plugin
registers (Arrow UDFs and the pure-SQL HMAC macros), on a real DuckDB
connection configured by the plugin, fed through an Arrow table (as a model
reads a column, with duplicates and NULLs in the same batch); and the
SQL-only normalisers exactly as written in ``macros/privacy/normalise.sql``.
The Python side is :mod:`cdp.normalise` and :mod:`hmac`.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Callable, Iterator

import duckdb
import pyarrow as pa
import pytest
from dbt.adapters.duckdb.plugins import BasePlugin
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cdp import paths
from cdp.keys import (
    DOMAINS,
    ENV_KEY,
    ENV_KEY_FILE,
    ENV_KEY_VERSION,
    holding,
    load_master_key,
    pseudonym_key,
)
from cdp.normalise import IDENTIFIER_NORMALISERS, normalise_phone
from cdp.plugin import NORMALISER_FUNCTIONS, PHONE_REGION_FUNCTION, PSEUDONYM_FUNCTIONS, Plugin
from cdp.pseudonym import pseudonym

MACROS = paths.PROJECT_ROOT / "macros" / "privacy" / "normalise.sql"

# Any code point except surrogates (they cannot arrive in UTF-8 data): NUL and
# other controls, combining marks, RTL, emoji, private use, non-characters.
unicode_text = st.text(st.characters(codec="utf-8"), max_size=200)
building_blocks = st.lists(
    st.sampled_from(
        list(" \t\n\r\x00\x0b\u00a0\u2028\u200b\ufeff@.:/?#&=%+-_()'\";\\[]*")
        + list("aZ09éЁёİ\u0131ßﬁ\u0307\u0301日🔑\U0010fffd\uff18\u0663")
        + ["mail.ru", "+7", "8 (912) 345-67-89", "xn--", "http://", "192.168.", "::ffff:"]
        + ["Mozilla/5.0", "Android", "Mobile", "' or 1=1 --", "'); drop table x; --"]
    ),
    max_size=40,
).map("".join)
very_long = st.integers(min_value=1_000, max_value=100_000).flatmap(
    lambda n: st.sampled_from(["9", "a@", "ё", "\x00", "🔑", "' ;"]).map(lambda s: s * n)
)
hostile_value = st.one_of(st.none(), st.just(""), unicode_text, building_blocks, very_long)
hostile_batch = st.lists(hostile_value, min_size=1, max_size=40)

# CDP_HYP_EXAMPLES raises the count for a longer hunt; the default keeps the suite quick.
HYP = settings(
    max_examples=int(os.environ.get("CDP_HYP_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def key() -> Iterator[str]:
    saved = {n: os.environ.get(n) for n in (ENV_KEY, ENV_KEY_FILE, ENV_KEY_VERSION)}
    value = secrets.token_urlsafe(48)
    os.environ.pop(ENV_KEY_FILE, None)
    os.environ[ENV_KEY] = value
    os.environ[ENV_KEY_VERSION] = "3"
    yield value
    for name, old in saved.items():
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


@pytest.fixture(scope="module")
def plugin(key: str) -> Plugin:
    with holding(load_master_key()):
        created = BasePlugin.create("cdp.plugin", config={"stage": "privacy"})
    assert isinstance(created, Plugin)
    return created


@pytest.fixture(scope="module")
def con(plugin: Plugin) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB connection with the plugin's functions, as dbt-duckdb configures one."""
    connection = duckdb.connect()
    plugin.configure_connection(connection)
    plugin.configure_cursor(connection)
    _PLUGIN[:] = [plugin]
    yield connection
    connection.close()


_PLUGIN: list[Plugin] = []


def _through_sql(
    con: duckdb.DuckDBPyConnection, expression: str, values: list[str | None]
) -> list[object]:
    """``expression`` (over column ``v``) for each value, read from an Arrow table, in order."""
    cur = con.cursor()  # the plugin's macros are per connection: a cursor needs them too
    _PLUGIN[0].configure_cursor(cur)
    batch = pa.table(
        {"i": pa.array(range(len(values)), pa.int64()), "v": pa.array(values, pa.string())}
    )
    cur.register("batch", batch)
    try:
        rows = cur.execute(f"SELECT {expression} FROM batch ORDER BY i").fetchall()
    finally:
        cur.close()
    return [r[0] for r in rows]


def _mismatches(
    values: list[str | None], got: list[object], expected: Callable[[str | None], object]
) -> list[tuple[str, object, object]]:
    out = []
    for value, actual in zip(values, got, strict=True):
        want = expected(value)
        if actual != want:
            out.append((repr(value)[:80], actual, want))
    return out


# --------------------------------------------------------------------------- UDF normalisers


@pytest.mark.parametrize("function", sorted(NORMALISER_FUNCTIONS))
@HYP
@given(values=hostile_batch)
@example(values=[None, "", "\x00", "a@b.ru\x00", " A@B.RU ", "A@B.RU", "x" * 100_000])
def test_udf_normalisers_equal_python(
    con: duckdb.DuckDBPyConnection, function: str, values: list[str | None]
) -> None:
    """Every Arrow UDF staging calls returns what the Python normaliser returns, value by value."""
    got = _through_sql(con, f"{function}(v)", values)
    python = NORMALISER_FUNCTIONS[function]
    assert _mismatches(values, got, python) == []


@HYP
@given(values=hostile_batch, region=st.sampled_from(["RU", "ru", "DE", "US", "", "ZZ", "'; --"]))
def test_phone_region_udf_equals_python(
    con: duckdb.DuckDBPyConnection, values: list[str | None], region: str
) -> None:
    got = _through_sql(
        con, f"{PHONE_REGION_FUNCTION}(v, ?)".replace("?", _sql_string(region)), values
    )
    assert _mismatches(values, got, lambda v: normalise_phone(v, region)) == []


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# --------------------------------------------------------------------------- SQL-only normalisers


def _macro_body(name: str) -> str:
    """The SQL DuckDB runs for ``<name>(value)`` (``duckdb__<name>`` if the macro has one,
    else ``default__<name>``) in macros/privacy/normalise.sql, over column ``v``."""
    text = MACROS.read_text(encoding="utf-8")
    for prefix in ("duckdb__", "default__"):
        found = re.search(
            r"\{%\s*macro " + prefix + name + r"\(value\)\s*-?%\}(.*?)\{%-?\s*endmacro",
            text,
            re.S,
        )
        if found:
            return found.group(1).strip().replace("{{ value }}", "v")
    raise AssertionError(f"neither duckdb__{name} nor default__{name} found in {MACROS}")


SQL_ONLY = {
    "normalise_key": "customer_id",
    "normalise_token": "anonymous_id",
    "normalise_card": "loyalty_card",
}


@pytest.mark.parametrize("macro", sorted(SQL_ONLY))
@HYP
@given(values=hostile_batch)
@example(values=["\u0130stanbul", "ǅ", "ẞ", " \tabc\t ", "\u00a0x\u00a0", "ﬁ", "Σσς"])
def test_sql_macro_normalisers_equal_python(
    con: duckdb.DuckDBPyConnection, macro: str, values: list[str | None]
) -> None:
    """The vault tool's Python mirror of each SQL-only normaliser agrees with the macro."""
    got = _through_sql(con, _macro_body(macro), values)
    python = IDENTIFIER_NORMALISERS[SQL_ONLY[macro]]
    assert _mismatches(values, got, python) == []


@pytest.mark.parametrize("macro", ["normalise_key", "normalise_token"])
def test_sql_macro_normalisers_equal_python_on_every_code_point(
    con: duckdb.DuckDBPyConnection, macro: str
) -> None:
    """Exhaustive: each code point (surrogates aside) around, and alone in, a value.

    Found: DuckDB's trim() strips every Unicode space separator (not only ' '),
    and its lower() maps 'İ' to 'i' (Python: 'i' + U+0307); the vault tool's
    mirror had both wrong, so `find` missed such identifiers.
    """
    chars = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    values: list[str | None] = [c + "Ab" + c for c in chars]
    values += chars
    got = _through_sql(con, _macro_body(macro), values)
    python = IDENTIFIER_NORMALISERS[SQL_ONLY[macro]]
    assert _mismatches(values, got, python)[:5] == []


def test_macro_extraction_can_fail(con: duckdb.DuckDBPyConnection) -> None:
    """The comparison is real: a planted difference (upper instead of lower) is caught."""
    body = _macro_body("normalise_token").replace("lower(", "upper(")
    got = _through_sql(con, body, ["AbC"])
    assert _mismatches(["AbC"], got, IDENTIFIER_NORMALISERS["anonymous_id"]) != []


# --------------------------------------------------------------------------- HMAC


@pytest.mark.parametrize("domain", DOMAINS)
@HYP
@given(values=hostile_batch, id_type=st.sampled_from(["email", "phone", "customer_id", "x:y", ""]))
@example(values=["", "\x00", "a\x00b", "\x00" * 70, "é" * 64, "🔑" * 20_000], id_type="email")
def test_pseudonym_macro_equals_python_hmac(
    con: duckdb.DuckDBPyConnection, key: str, domain: str, values: list[str | None], id_type: str
) -> None:
    """cdp_pseudonym_<domain> (pure SQL, from the plugin) == hmac.new(key, type:value, sha256)."""
    master = load_master_key()
    derived = pseudonym_key(master, domain)
    got = _through_sql(con, f"{PSEUDONYM_FUNCTIONS[domain]}({_sql_string(id_type)}, v)", values)

    def expected(value: str | None) -> str | None:
        if value is None:
            return None
        digest = hmac.new(derived, f"{id_type}:{value}".encode(), hashlib.sha256).hexdigest()
        return f"v3_{digest}"

    assert _mismatches(values, got, expected) == []
    assert all(
        v is None or v == pseudonym(derived, "3", id_type, v0)
        for v, v0 in zip(got, values, strict=True)
    )


def test_hmac_comparison_can_fail(con: duckdb.DuckDBPyConnection, key: str) -> None:
    """A pseudonym under another domain's key does not pass for this one."""
    master = load_master_key()
    other = pseudonym_key(master, "person")
    got = _through_sql(con, f"{PSEUDONYM_FUNCTIONS['identity']}('email', v)", ["a@b.ru"])
    assert got != [pseudonym(other, "3", "email", "a@b.ru")]


def test_nul_and_long_values_reach_sql_unchanged(con: duckdb.DuckDBPyConnection) -> None:
    """DuckDB keeps a NUL and 100,000 characters intact: what is hashed is what arrived."""
    values: list[str | None] = ["a\x00b", "\x00", "é" * 100_000]
    got = _through_sql(con, "length(v)", values)
    assert got == [3, 1, 100_000]
