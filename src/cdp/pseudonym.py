"""Keyed pseudonyms: HMAC-SHA-256 in Python (what the build registers) and as a SQL macro.

A pseudonym is ``'v' || <key version> || '_' || <64 lowercase hex>``, the hex
being HMAC-SHA-256 (RFC 2104), under a domain key (:mod:`cdp.keys`), of the
UTF-8 bytes of ``id_type || ':' || value`` where ``value`` is the *normalised*
identifier. The id type is part of the message, so an email and a phone number
with the same text never share a pseudonym. Id types are fixed names without
``':'``, so the message is unambiguous.

The Python functions here are the reference. :func:`hmac_sql` builds the same
function in plain DuckDB SQL from the key's inner and outer pads::

    HMAC(K, m) = SHA256((K ^ opad) || SHA256((K ^ ipad) || m))

    sha256(<K^opad as BLOB> || unhex(sha256(<K^ipad as BLOB> || encode(m))))

DuckDB's ``sha256`` accepts a BLOB and returns lowercase hex; ``encode`` turns
a VARCHAR into its UTF-8 bytes (a ``::BLOB`` cast would interpret ``\\x``
escapes instead, so it must not be used); ``||`` concatenates blobs; the only
hex round trip is ``unhex`` of the inner digest. NULL propagates through every
step, so NULL in gives NULL out. ``scripts/bench_hmac.py`` proves bit-for-bit
equality with :mod:`hmac` and measures this against Python UDFs: the macro is
the fastest correct option (it runs in DuckDB's threads, no GIL).

The SQL text embeds the pads, which are equivalent to the domain key: anyone
who can run SQL on a connection with the macro reads its definition
(``duckdb_functions()``, ``EXPLAIN``) and XORs the key back. The build
therefore no longer uses it (docs/decisions.md, 36): the plugin registers
:func:`arrow_pseudonym_function`, whose key stays in a Python closure. The
macro is kept as the benchmark's yardstick (``scripts/bench_hmac.py``) and
as the planted weak configuration of the key-isolation attack suite.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Sequence
from typing import Any, Final

BLOCK_SIZE: Final = 64  # SHA-256 block size in bytes
_IPAD: Final = 0x36
_OPAD: Final = 0x5C
_SQL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_VERSION = re.compile(r"[1-9][0-9]{0,3}")
#: A pseudonym anywhere in a text; group 1 is its key version.
TOKEN: Final = re.compile(r"v([1-9][0-9]{0,3})_[0-9a-f]{64}")


def _block_key(key: bytes) -> bytes:
    if len(key) > BLOCK_SIZE:
        key = hashlib.sha256(key).digest()
    return key.ljust(BLOCK_SIZE, b"\x00")


def hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    """``(K ^ ipad, K ^ opad)``: the two 64-byte blocks HMAC prefixes."""
    block = _block_key(key)
    return bytes(b ^ _IPAD for b in block), bytes(b ^ _OPAD for b in block)


def hmac_sha256_hex(key: bytes, message: str | bytes) -> str:
    """HMAC-SHA-256 of a message (str: its UTF-8 bytes) as 64 lowercase hex digits."""
    data = message.encode("utf-8") if isinstance(message, str) else message
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def pseudonym_message(id_type: str, value: str) -> str:
    """The text that is hashed: ``id_type + ':' + value``."""
    return f"{id_type}:{value}"


def format_pseudonym(version: str, digest_hex: str) -> str:
    return f"v{version}_{digest_hex}"


def pseudonym(key: bytes, version: str, id_type: str | None, value: str | None) -> str | None:
    """The pseudonym of a normalised identifier, or None when either part is None."""
    if id_type is None or value is None:
        return None
    return format_pseudonym(version, hmac_sha256_hex(key, pseudonym_message(id_type, value)))


# --------------------------------------------------------------------------- SQL


def blob_literal(data: bytes) -> str:
    """A DuckDB BLOB literal, e.g. ``'\\x0A\\xFF'::BLOB`` (constant-folded by DuckDB)."""
    return "'" + "".join(f"\\x{b:02X}" for b in data) + "'::BLOB"


def hmac_sql(key: bytes, message_sql: str) -> str:
    """A DuckDB SQL expression: lowercase hex HMAC-SHA-256 of the VARCHAR ``message_sql``.

    Secret: the result embeds the key's pads.
    """
    ipad, opad = hmac_pads(key)
    return (
        f"sha256({blob_literal(opad)} || "
        f"unhex(sha256({blob_literal(ipad)} || encode({message_sql}))))"
    )


def _check_name(name: str) -> None:
    if not _SQL_NAME.fullmatch(name):
        raise ValueError(f"not a plain SQL identifier: {name!r}")


def _check_version(version: str) -> None:
    if not _VERSION.fullmatch(version):
        raise ValueError(f"not a key version (1-4 digits): {version!r}")


def hmac_macro_sql(name: str, key: bytes) -> str:
    """``CREATE OR REPLACE TEMP MACRO name(message VARCHAR)``: the bare hex HMAC.

    Secret: the result embeds the key's pads.
    """
    _check_name(name)
    return f"CREATE OR REPLACE TEMP MACRO {name}(message VARCHAR) AS {hmac_sql(key, 'message')}"


def pseudonym_macro_sql(name: str, key: bytes, version: str) -> str:
    """``CREATE OR REPLACE TEMP MACRO name(id_type VARCHAR, value VARCHAR)``.

    Returns ``'v<version>_' || hmac_hex(id_type || ':' || value)``; NULL if
    either argument is NULL. Secret: the result embeds the key's pads.
    """
    _check_name(name)
    _check_version(version)
    body = hmac_sql(key, "id_type || ':' || value")
    return (
        f"CREATE OR REPLACE TEMP MACRO {name}(id_type VARCHAR, value VARCHAR) AS "
        f"'v{version}_' || {body}"
    )


def key_version_macro_sql(name: str, version: str) -> str:
    """``CREATE OR REPLACE TEMP MACRO name()`` returning ``'v<version>'`` (not secret)."""
    _check_name(name)
    _check_version(version)
    return f"CREATE OR REPLACE TEMP MACRO {name}() AS 'v{version}'"


# --------------------------------------------------------------------------- Python UDFs
# Measured alternatives to the macro (see scripts/bench_hmac.py). They hold the
# key in a closure, never in SQL, but are GIL-bound and several times slower.


def python_pseudonym_function(
    key: bytes, version: str
) -> Callable[[str | None, str | None], str | None]:
    """A scalar Python function (for ``create_function``) computing pseudonyms.

    Uses precomputed inner/outer SHA-256 states, i.e. HMAC with the key
    schedule done once.
    """
    ipad, opad = hmac_pads(key)
    inner0 = hashlib.sha256(ipad)
    outer0 = hashlib.sha256(opad)
    prefix = f"v{version}_"

    def fn(id_type: str | None, value: str | None) -> str | None:
        if id_type is None or value is None:
            return None
        inner = inner0.copy()
        inner.update(f"{id_type}:{value}".encode())
        outer = outer0.copy()
        outer.update(inner.digest())
        return prefix + outer.hexdigest()

    return fn


def arrow_pseudonym_function(key: bytes, version: str) -> Callable[[Any, Any], Any]:
    """A vectorised (Arrow) version of :func:`python_pseudonym_function`.

    This is what the build registers (``cdp.plugin``): the key lives in this
    closure, never in SQL, so no statement, macro definition, plan or profile
    can show it. Each batch computes every distinct ``(id_type, value)`` once.
    """
    import pyarrow as pa

    scalar = python_pseudonym_function(key, version)

    def fn(id_types: Any, values: Any) -> Any:
        types = id_types.combine_chunks() if isinstance(id_types, pa.ChunkedArray) else id_types
        vals = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
        try:
            type_codes = types.dictionary_encode()
            value_codes = vals.dictionary_encode()
        except (pa.ArrowException, AttributeError):
            pairs = zip(types.to_pylist(), vals.to_pylist(), strict=True)
            return pa.array([scalar(t, v) for t, v in pairs], type=pa.string())
        type_dict: Sequence[str | None] = type_codes.dictionary.to_pylist()
        if len(type_dict) == 1 and types.null_count == 0:
            # The common case: one id type per call site. Hash each distinct value once.
            only = type_dict[0]
            mapped = pa.array(
                [scalar(only, v) for v in value_codes.dictionary.to_pylist()], type=pa.string()
            )
            return mapped.take(value_codes.indices)
        pairs = zip(types.to_pylist(), vals.to_pylist(), strict=True)
        cache: dict[tuple[str | None, str | None], str | None] = {}
        out = []
        for pair in pairs:
            if pair not in cache:
                cache[pair] = scalar(*pair)
            out.append(cache[pair])
        return pa.array(out, type=pa.string())

    return fn
