"""HMAC-SHA-256: the pure-SQL DuckDB macro equals Python's hmac, bit for bit."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterator

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdp.pseudonym import (
    arrow_pseudonym_function,
    blob_literal,
    hmac_macro_sql,
    hmac_pads,
    hmac_sha256_hex,
    key_version_macro_sql,
    pseudonym,
    pseudonym_macro_sql,
    python_pseudonym_function,
)

KEY = secrets.token_bytes(32)
PSEUDONYM = re.compile(r"^v[1-9][0-9]{0,3}_[0-9a-f]{64}$")

# RFC 4231 test vectors for HMAC-SHA-256 (cases 1, 2, 6, 7).
RFC4231 = [
    (b"\x0b" * 20, b"Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    (
        b"Jefe",
        b"what do ya want for nothing?",
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    ),
    (
        b"\xaa" * 131,
        b"Test Using Larger Than Block-Size Key - Hash Key First",
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
    ),
    (
        b"\xaa" * 131,
        b"This is a test using a larger than block-size key and a larger than block-size data."
        b" The key needs to be hashed before being used by the HMAC algorithm.",
        "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
    ),
]


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    connection.execute(pseudonym_macro_sql("t_pseudonym", KEY, "1"))
    connection.execute(hmac_macro_sql("t_hmac", KEY))
    connection.execute(key_version_macro_sql("t_version", "7"))
    yield connection
    connection.close()


def _sql_pseudonyms(
    con: duckdb.DuckDBPyConnection, id_type: str, values: list[str | None]
) -> list[str | None]:
    """One batch through a real table (not constants), in input order."""
    cur = con.cursor()
    cur.execute(pseudonym_macro_sql("t_pseudonym", KEY, "1"))
    cur.execute("CREATE TEMP TABLE batch (i INTEGER, v VARCHAR)")
    cur.executemany("INSERT INTO batch VALUES (?, ?)", list(enumerate(values)))
    rows = cur.execute("SELECT t_pseudonym(?, v) FROM batch ORDER BY i", [id_type]).fetchall()
    cur.close()
    return [r[0] for r in rows]


def test_rfc4231_vectors_python_and_sql() -> None:
    con = duckdb.connect()
    for i, (key, data, expected) in enumerate(RFC4231):
        assert hmac_sha256_hex(key, data) == expected
        con.execute(hmac_macro_sql(f"h{i}", key))
        row = con.execute(f"SELECT h{i}(?)", [data.decode()]).fetchone()
        assert row is not None
        assert row[0] == expected
    con.close()


def test_pads_are_rfc2104() -> None:
    ipad, opad = hmac_pads(KEY)
    assert len(ipad) == len(opad) == 64
    assert ipad[:32] == bytes(b ^ 0x36 for b in KEY)
    assert opad[32:] == b"\x5c" * 32
    long_key = b"k" * 100
    assert hmac_pads(long_key)[0][:32] == bytes(b ^ 0x36 for b in hashlib.sha256(long_key).digest())


@pytest.mark.parametrize(
    "value",
    [
        "",
        "a",
        "a@b.ru",
        "x" * 55,
        "x" * 56,
        "x" * 63,
        "x" * 64,
        "x" * 65,
        "x" * 1000,
        "Иван.Петров@пример.рф",
        "ё😀\u0301\u200d",
        "\\x41\\x00 backslashes are text, not escapes",
        "tab\tnewline\nquote' double\"",
        "\u0000 nul inside",
    ],
)
def test_macro_matches_python_examples(con: duckdb.DuckDBPyConnection, value: str) -> None:
    expected = "v1_" + hmac.new(KEY, f"email:{value}".encode(), hashlib.sha256).hexdigest()
    assert pseudonym(KEY, "1", "email", value) == expected
    row = con.execute("SELECT t_pseudonym('email', ?), t_hmac(?)", [value, value]).fetchone()
    assert row is not None
    assert row[0] == expected
    assert row[1] == hmac_sha256_hex(KEY, value)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    id_type=st.sampled_from(["email", "phone", "customer_id", "anonymous_id"]),
    batch=st.lists(
        st.one_of(st.none(), st.text(st.characters(codec="utf-8"), max_size=200)),
        min_size=1,
        max_size=40,
    ),
)
def test_macro_matches_python_hmac_on_unicode_batches(
    con: duckdb.DuckDBPyConnection, id_type: str, batch: list[str | None]
) -> None:
    assert _sql_pseudonyms(con, id_type, batch) == [pseudonym(KEY, "1", id_type, v) for v in batch]


def test_null_in_null_out(con: duckdb.DuckDBPyConnection) -> None:
    row = con.execute(
        "SELECT t_pseudonym('email', NULL), t_pseudonym(NULL, 'x'), t_hmac(NULL)"
    ).fetchone()
    assert row == (None, None, None)
    assert pseudonym(KEY, "1", "email", None) is None
    assert pseudonym(KEY, "1", None, "x") is None


def test_format_version_and_type_separation(con: duckdb.DuckDBPyConnection) -> None:
    row = con.execute("SELECT t_pseudonym('email', 'x'), t_version()").fetchone()
    assert row is not None
    assert PSEUDONYM.match(row[0])
    assert row[1] == "v7"
    assert pseudonym(KEY, "1", "email", "x") != pseudonym(KEY, "1", "phone", "x")
    assert pseudonym(KEY, "2", "email", "x") == "v2_" + hmac_sha256_hex(KEY, "email:x")
    other = secrets.token_bytes(32)
    assert pseudonym(KEY, "1", "email", "x") != pseudonym(other, "1", "email", "x")


def test_macro_refuses_non_varchar_arguments(con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(duckdb.BinderException) as info:
        con.execute("SELECT t_pseudonym('customer_id', 42)")
    # The binder error names the macro, never its body (which embeds the pads).
    ipad, _opad = hmac_pads(KEY)
    assert ipad.hex().upper()[:16] not in str(info.value).upper()
    row = con.execute("SELECT t_pseudonym('customer_id', 42::VARCHAR)").fetchone()
    assert row is not None
    assert row[0] == pseudonym(KEY, "1", "customer_id", "42")


def test_sql_builders_validate_names_and_versions() -> None:
    with pytest.raises(ValueError):
        pseudonym_macro_sql("bad name; drop", KEY, "1")
    with pytest.raises(ValueError):
        pseudonym_macro_sql("ok", KEY, "01")
    with pytest.raises(ValueError):
        key_version_macro_sql("ok", "1'; --")
    assert blob_literal(b"\x00\xff") == "'\\x00\\xFF'::BLOB"


def test_python_udf_variants_match(con: duckdb.DuckDBPyConnection) -> None:
    scalar = python_pseudonym_function(KEY, "1")
    arrow = arrow_pseudonym_function(KEY, "1")
    import pyarrow as pa

    values = ["", "a", "x" * 100, "ё", None]
    expected = [pseudonym(KEY, "1", "email", v) for v in values]
    assert [scalar("email", v) for v in values] == expected
    got = arrow(pa.array(["email"] * len(values)), pa.array(values, type=pa.string()))
    assert got.to_pylist() == expected
