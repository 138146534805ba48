"""The re-identification vault: sealing identifiers, and the privacy officer's tool.

Sealing
-------
``seal(id_type, value)`` encrypts an identifier with AES-256-GCM under a key
derived from the master secret (HKDF, ``cdp:vault:aes-256-gcm:v<version>``):

* nonce = the first 12 bytes of HMAC-SHA-256(nonce_key, ``id_type || 0x00 ||
  value``), nonce_key derived separately (``cdp:vault:nonce:v<version>``);
* AAD = ``id_type`` (an email sealed as a phone does not open);
* blob = nonce (12 bytes) || ciphertext || tag (16 bytes).

Why a deterministic nonce is safe here (the SIV argument, as in RFC 5297 and
AES-GCM-SIV): GCM breaks only when one nonce is used for two *different*
messages. The nonce is a PRF of the whole input (id type and value) under a
key independent of the encryption key, so two different inputs get the same
nonce only by a 96-bit PRF collision (negligible below ~2^40 identifiers),
while the same input always gets the same nonce *and* the same ciphertext,
which reveals only that the two are equal: the vault row's pseudonym reveals
that already. In exchange builds are reproducible (a rebuild writes identical
bytes) and no random-number state is needed inside DuckDB's threads.
:meth:`VaultCipher.unseal` also recomputes the nonce from the plaintext and
refuses a blob whose nonce does not match.

The vault file
--------------
A separate DuckDB file (``cdp.paths.vault_db()``, ``CDP_VAULT_DB``), written by
the dbt vault models through ``cdp_vault_seal()`` (``main.vault_identifiers``:
pseudonym, id_type, sealed value, key_version; ``main.vault_customer_names``:
customer_key, attribute, sealed value, key_version). The plugin creates it
owner-only (folder 0700 when it creates the folder, file 0600).

The officer's tool
------------------
::

    python -m cdp.vault lookup --pseudonym v1_... --officer NAME --reason TEXT
    python -m cdp.vault find --id-type email --value X --officer NAME --reason TEXT
    python -m cdp.vault log [--limit 20]

``lookup`` decrypts and prints every identifier held for a pseudonym; ``find``
normalises an identifier as staging does, prints its identity pseudonym and
whether the vault holds it. Both refuse to run without ``--officer`` and
``--reason``, and append one row per request to ``main.reidentification_log``
in the vault file (who, why, when in UTC, what was asked as id type and
pseudonym, how many rows, outcome; never a plaintext identifier) *before*
anything is printed: if the log cannot be written, nothing is revealed.
"""

from __future__ import annotations

import argparse
import getpass
import hashlib
import hmac
import json
import os
import re
import stat
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import duckdb
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cdp import paths
from cdp.keys import (
    KeyConfigError,
    MasterKey,
    load_master_key,
    pseudonym_key,
    vault_encryption_key,
    vault_nonce_key,
)
from cdp.normalise import IDENTIFIER_NORMALISERS, normalise_identifier
from cdp.pseudonym import pseudonym

NONCE_BYTES: Final = 12
TAG_BYTES: Final = 16
IDENTIFIERS_TABLE: Final = "vault_identifiers"
NAMES_TABLE: Final = "vault_customer_names"
LOG_TABLE: Final = "reidentification_log"
TOOL: Final = "cdp.vault"
_VERSION_LABEL: Final = re.compile(r"v?([1-9][0-9]{0,3})")

LOG_DDL: Final = f"""
CREATE TABLE IF NOT EXISTS main.{LOG_TABLE} (
    log_id VARCHAR NOT NULL,
    logged_at TIMESTAMP NOT NULL,
    officer VARCHAR NOT NULL,
    reason VARCHAR NOT NULL,
    os_user VARCHAR,
    action VARCHAR NOT NULL,
    id_type VARCHAR,
    pseudonym VARCHAR,
    rows_returned INTEGER NOT NULL,
    outcome VARCHAR NOT NULL,
    key_version VARCHAR,
    tool VARCHAR NOT NULL,
    request_id VARCHAR
)
"""
# A log created before access exports existed lacks the request id: added in place.
LOG_MIGRATE: Final = f"ALTER TABLE main.{LOG_TABLE} ADD COLUMN IF NOT EXISTS request_id VARCHAR"
LOG_COLUMNS: Final = (
    "log_id, logged_at, officer, reason, os_user, action, id_type, pseudonym, rows_returned, "
    "outcome, key_version, tool, request_id"
)


class VaultError(RuntimeError):
    """A problem the officer can act on; the message says what to do."""


class VaultKeyMismatch(VaultError):
    """The configured master key does not open the vault's entries."""


# --------------------------------------------------------------------------- sealing


class VaultCipher:
    """Seal and unseal identifiers for one key version. Holds keys: never printed."""

    __slots__ = ("_aead", "_nonce_key", "version")

    def __init__(self, encryption_key: bytes, nonce_key: bytes, version: str) -> None:
        if len(encryption_key) != 32 or len(nonce_key) < 32:
            raise ValueError("the vault needs a 32-byte encryption key and nonce key")
        self._aead = AESGCM(encryption_key)
        self._nonce_key = nonce_key
        self.version = version

    @classmethod
    def from_master(cls, master: MasterKey, version: str | None = None) -> VaultCipher:
        """The cipher of ``version`` (default: the configured one) under this master key."""
        v = version or master.version
        return cls(vault_encryption_key(master, v), vault_nonce_key(master, v), v)

    def __repr__(self) -> str:
        return f"VaultCipher(version={self.version!r}, keys=<redacted>)"

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("a VaultCipher cannot be pickled or copied out of the process")

    def _nonce(self, aad: bytes, plaintext: bytes) -> bytes:
        mac = hmac.new(self._nonce_key, aad + b"\x00" + plaintext, hashlib.sha256)
        return mac.digest()[:NONCE_BYTES]

    @staticmethod
    def _aad(id_type: str) -> bytes:
        if "\x00" in id_type:
            raise ValueError("an id_type must not contain a NUL character")
        return id_type.encode("utf-8")

    def seal(self, id_type: str, value: str) -> bytes:
        """nonce || AES-256-GCM(value, aad=id_type) || tag; deterministic."""
        aad = self._aad(id_type)
        plaintext = value.encode("utf-8")
        nonce = self._nonce(aad, plaintext)
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def unseal(self, id_type: str, blob: bytes) -> str:
        """The plaintext of a sealed blob, or :class:`VaultKeyMismatch`."""
        aad = self._aad(id_type)
        data = bytes(blob)
        if len(data) < NONCE_BYTES + TAG_BYTES:
            raise VaultError("a vault entry is truncated (shorter than nonce and tag)")
        nonce, body = data[:NONCE_BYTES], data[NONCE_BYTES:]
        try:
            plaintext = self._aead.decrypt(nonce, body, aad)
        except InvalidTag:
            raise VaultKeyMismatch(
                f"a vault entry ({id_type}) does not open with the configured master key: the "
                f"key does not match the vault's key version v{self.version}. Set "
                f"CDP_MASTER_KEY / CDP_MASTER_KEY_FILE to the master key the vault was built "
                f"with (and CDP_KEY_VERSION to its version)"
            ) from None
        if not hmac.compare_digest(nonce, self._nonce(aad, plaintext)):
            raise VaultKeyMismatch(
                f"a vault entry ({id_type}) has a nonce that does not derive from its content "
                f"under key version v{self.version}: it was not sealed with this master key"
            )
        return plaintext.decode("utf-8")


def parse_version(label: str | None) -> str:
    """``'v1'`` or ``'1'`` -> ``'1'``; a :class:`VaultError` otherwise."""
    match = _VERSION_LABEL.fullmatch((label or "").strip())
    if not match:
        raise VaultError(f"the vault holds an entry with an unreadable key version {label!r}")
    return match.group(1)


# --------------------------------------------------------------------------- the file


def _owned_by_me(st: os.stat_result) -> bool:
    return not hasattr(os, "getuid") or st.st_uid == os.getuid()


def restrict_file(path: Path) -> None:
    """Make an existing file of ours owner-only (0600); also its DuckDB WAL."""
    if os.name != "posix":
        return
    for candidate in (path, path.with_name(path.name + ".wal")):
        try:
            st = candidate.stat()
        except FileNotFoundError:
            continue
        if _owned_by_me(st) and stat.S_IMODE(st.st_mode) & 0o077:
            os.chmod(candidate, 0o600)


def prepare_vault_file(path: Path) -> None:
    """Create the vault's folder (0700) and an empty vault database (0600) if missing.

    An existing file of ours is tightened to 0600. An existing folder is left
    as it is (it may be shared with other zones' files).
    """
    folder = path.parent
    if not folder.exists():
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if os.name == "posix":
            os.chmod(folder, 0o700)
    if not path.exists():
        duckdb.connect(str(path)).close()
    restrict_file(path)


def _table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    row = con.execute(
        "SELECT count(*) FROM duckdb_tables() "
        "WHERE database_name = current_database() AND schema_name = 'main' AND table_name = ?",
        [table],
    ).fetchone()
    return bool(row and row[0])


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    rows = con.execute(
        "SELECT column_name FROM duckdb_columns() "
        "WHERE database_name = current_database() AND schema_name = 'main' AND table_name = ?",
        [table],
    ).fetchall()
    return {str(r[0]) for r in rows}


def _sealed_column(con: duckdb.DuckDBPyConnection, table: str) -> str:
    columns = _columns(con, table)
    for name in ("sealed", "sealed_value"):
        if name in columns:
            return name
    raise VaultError(f"main.{table} in the vault has no sealed column (sealed or sealed_value)")


def open_vault(path: Path | None = None) -> duckdb.DuckDBPyConnection:
    """Open the vault file read-write (for the log) and make sure the log table exists."""
    target = paths.vault_db() if path is None else path
    if not target.is_file():
        raise VaultError(
            f"the vault file {target} does not exist: it is written by `dbt build` (the vault "
            f"models); set CDP_VAULT_DB if it lives elsewhere"
        )
    try:
        con = duckdb.connect(str(target))
    except duckdb.Error as exc:
        text = str(exc).lower()
        if "lock" in text:
            raise VaultError(
                f"the vault file {target} is in use by another process (a running dbt build?); "
                f"try again when it has finished"
            ) from None
        raise VaultError(f"the vault file {target} cannot be opened as a DuckDB database") from None
    con.execute(LOG_DDL)
    con.execute(LOG_MIGRATE)
    restrict_file(target)
    return con


# --------------------------------------------------------------------------- lookups


@dataclass(frozen=True)
class Identifier:
    """One decrypted entry: where it came from, its type and value."""

    table: str
    id_type: str
    value: str
    key_version: str


@dataclass(frozen=True)
class Request:
    officer: str
    reason: str
    action: str


def _check_request(officer: str | None, reason: str | None, action: str) -> Request:
    who = (officer or "").strip()
    why = (reason or "").strip()
    if not who:
        raise VaultError("--officer is required: the name of the privacy officer asking")
    if len(why) < 5:
        raise VaultError(
            "--reason is required: why this re-identification is needed (e.g. the subject "
            "request id), at least 5 characters"
        )
    if "@" in why or re.search(r"\d(?:[\s().\-]*\d){9,}", why):
        raise VaultError(
            "--reason must not contain an identifier (it is logged): give a request id instead"
        )
    return Request(officer=who, reason=why, action=action)


def append_log(
    con: duckdb.DuckDBPyConnection,
    request: Request,
    *,
    id_type: str | None,
    pseudonym_value: str | None,
    rows_returned: int,
    outcome: str,
    key_version: str | None,
    request_id: str | None = None,
    tool: str = TOOL,
) -> None:
    """Append one row to ``main.reidentification_log`` (never a plaintext identifier)."""
    con.execute(LOG_DDL)
    con.execute(LOG_MIGRATE)
    try:
        os_user = getpass.getuser()
    except Exception:
        os_user = None
    con.execute(
        f"INSERT INTO main.{LOG_TABLE} ({LOG_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            str(uuid.uuid4()),
            datetime.now(UTC).replace(tzinfo=None),
            request.officer,
            request.reason,
            os_user,
            request.action,
            id_type,
            pseudonym_value,
            rows_returned,
            outcome,
            key_version,
            tool,
            request_id,
        ],
    )


def _decrypt_rows(
    rows: Sequence[tuple[str, str, bytes, str]],
    cipher_for: Callable[[str], VaultCipher],
) -> list[Identifier]:
    out = []
    for table, id_type, blob, version_label in rows:
        version = parse_version(version_label)
        value = cipher_for(version).unseal(id_type, blob)
        out.append(Identifier(table, id_type, value, f"v{version}"))
    return out


def lookup(
    con: duckdb.DuckDBPyConnection,
    master: MasterKey,
    pseudonym_value: str,
    request: Request,
) -> list[Identifier]:
    """Decrypt every identifier the vault holds for a pseudonym; logged before returning."""
    if not _table_exists(con, IDENTIFIERS_TABLE):
        raise VaultError(
            f"the vault has no main.{IDENTIFIERS_TABLE} table yet: run `dbt build` first"
        )
    sealed = _sealed_column(con, IDENTIFIERS_TABLE)
    rows: list[tuple[str, str, bytes, str]] = [
        (IDENTIFIERS_TABLE, str(r[0]), bytes(r[1]), str(r[2]))
        for r in con.execute(
            f"SELECT id_type, {sealed}, key_version FROM main.{IDENTIFIERS_TABLE} "
            f"WHERE pseudonym = ? AND {sealed} IS NOT NULL ORDER BY id_type",
            [pseudonym_value],
        ).fetchall()
    ]
    if _table_exists(con, NAMES_TABLE):
        names_sealed = _sealed_column(con, NAMES_TABLE)
        # The dbt model names the column name_part; older vault files called it attribute.
        part = "name_part" if "name_part" in _columns(con, NAMES_TABLE) else "attribute"
        rows += [
            (NAMES_TABLE, str(r[0]), bytes(r[1]), str(r[2]))
            for r in con.execute(
                f"SELECT {part}, {names_sealed}, key_version FROM main.{NAMES_TABLE} "
                f"WHERE customer_key = ? AND {names_sealed} IS NOT NULL ORDER BY {part}",
                [pseudonym_value],
            ).fetchall()
        ]
    ciphers: dict[str, VaultCipher] = {}

    def cipher_for(version: str) -> VaultCipher:
        if version not in ciphers:
            ciphers[version] = VaultCipher.from_master(master, version)
        return ciphers[version]

    versions = ",".join(sorted({r[3] for r in rows})) or master.version_label
    try:
        found = _decrypt_rows(rows, cipher_for)
    except VaultError:
        append_log(
            con,
            request,
            id_type=None,
            pseudonym_value=pseudonym_value,
            rows_returned=0,
            outcome="key_mismatch",
            key_version=versions,
        )
        raise
    append_log(
        con,
        request,
        id_type=None,
        pseudonym_value=pseudonym_value,
        rows_returned=len(found),
        outcome="ok" if found else "not_found",
        key_version=versions,
    )
    return found


@dataclass(frozen=True)
class FindResult:
    pseudonym: str | None
    rows_held: int
    key_version: str


def find(
    con: duckdb.DuckDBPyConnection,
    master: MasterKey,
    id_type: str,
    value: str,
    request: Request,
) -> FindResult:
    """Normalise, pseudonymise (identity domain) and count the vault's rows; logged."""
    normalised = normalise_identifier(id_type, value)
    if normalised is None:
        append_log(
            con,
            request,
            id_type=id_type,
            pseudonym_value=None,
            rows_returned=0,
            outcome="invalid_value",
            key_version=master.version_label,
        )
        return FindResult(None, 0, master.version_label)
    key = pseudonym_key(master, "identity")
    p = pseudonym(key, master.version, id_type, normalised)
    held = 0
    if _table_exists(con, IDENTIFIERS_TABLE):
        row = con.execute(
            f"SELECT count(*) FROM main.{IDENTIFIERS_TABLE} WHERE pseudonym = ?", [p]
        ).fetchone()
        held = int(row[0]) if row else 0
    append_log(
        con,
        request,
        id_type=id_type,
        pseudonym_value=p,
        rows_returned=held,
        outcome="ok" if held else "not_found",
        key_version=master.version_label,
    )
    return FindResult(p, held, master.version_label)


# --------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cdp.vault",
        description=(
            "The privacy officer's re-identification tool. Every request is logged to "
            "main.reidentification_log in the vault file (who, why, when, what was asked, "
            "how many rows; never the plaintext) before anything is shown. The master key "
            "comes from CDP_MASTER_KEY or CDP_MASTER_KEY_FILE, as for the build."
        ),
        epilog="exit status: 0 found, 3 nothing found, 1 error, 2 usage error",
    )
    parser.add_argument(
        "--vault",
        type=Path,
        default=None,
        help="the vault DuckDB file (default: $CDP_VAULT_DB or data/vault.duckdb)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def officer_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--officer", required=True, help="your name (logged)")
        p.add_argument(
            "--reason",
            required=True,
            help="why: e.g. the subject request id (logged; must not contain an identifier)",
        )
        p.add_argument("--json", action="store_true", help="machine-readable output")

    lk = sub.add_parser("lookup", help="decrypt and print the identifiers held for a pseudonym")
    lk.add_argument("--pseudonym", required=True, help="an identity pseudonym, e.g. v1_3fa9...")
    officer_args(lk)

    fd = sub.add_parser(
        "find", help="pseudonymise an identifier and say whether the vault holds it"
    )
    fd.add_argument("--id-type", required=True, choices=sorted(IDENTIFIER_NORMALISERS))
    fd.add_argument(
        "--value",
        required=True,
        help="the identifier as given by the subject; '-' reads it from standard input "
        "(keeps it out of the shell history)",
    )
    officer_args(fd)

    lg = sub.add_parser("log", help="show the latest re-identification log entries")
    lg.add_argument("--limit", type=int, default=20)
    return parser


def _print_log(con: duckdb.DuckDBPyConnection, limit: int) -> None:
    rows = con.execute(
        f"SELECT logged_at, officer, action, id_type, pseudonym, rows_returned, outcome, reason "
        f"FROM main.{LOG_TABLE} ORDER BY logged_at DESC LIMIT ?",
        [max(1, limit)],
    ).fetchall()
    for r in rows:
        print("\t".join("" if v is None else str(v) for v in r))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        request: Request | None = None
        if args.command in ("lookup", "find"):
            request = _check_request(args.officer, args.reason, args.command)
        con = open_vault(args.vault)
        try:
            if args.command == "log":
                _print_log(con, args.limit)
                return 0
            assert request is not None
            master = load_master_key()
            if args.command == "lookup":
                found = lookup(con, master, args.pseudonym.strip(), request)
                if args.json:
                    print(json.dumps([asdict(f) for f in found], ensure_ascii=False))
                elif not found:
                    print(f"the vault holds nothing for {args.pseudonym.strip()}")
                else:
                    for f in found:
                        print(f"{f.id_type}\t{f.value}\t{f.key_version}\t{f.table}")
                return 0 if found else 3
            value = sys.stdin.readline().rstrip("\n") if args.value == "-" else args.value
            result = find(con, master, args.id_type, value, request)
            if args.json:
                print(json.dumps(asdict(result)))
            elif result.pseudonym is None:
                print(f"not a valid {args.id_type} after normalisation")
            else:
                print(result.pseudonym)
                held = f"yes ({result.rows_held} row(s))" if result.rows_held else "no"
                print(f"held by the vault: {held}")
            return 0 if result.rows_held else 3
        finally:
            con.close()
    except (VaultError, KeyConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
