"""The re-identification vault: sealing identifiers, and the privacy officer's tool.

Sealing
-------
``seal(table, owner, kind, value)`` encrypts a value with AES-256-GCM under a
key derived from the master secret (HKDF, ``cdp:vault:aes-256-gcm:v<version>``).
The authenticated data binds the entry to the row it belongs to::

    AAD = "cdp-vault/2" 0x00 table 0x00 owner 0x00 kind 0x00 "v" version

(``owner`` is the pseudonym or customer key of the row, ``kind`` its id type or
name part). A sealed value copied to another row, another table, another id
type or another key version does not open: a swapped or edited row fails
loudly (:class:`VaultTampered`) instead of answering with another person's
identifier.

Nonces:

* identifiers (``deterministic=True``): nonce = the first 12 bytes of
  HMAC-SHA-256(nonce_key, AAD || 0x00 || value), nonce_key derived
  separately (``cdp:vault:nonce:v<version>``). The SIV argument (RFC 5297,
  AES-GCM-SIV): GCM breaks only when one nonce serves two *different*
  messages; the nonce is a PRF of the whole input, so that needs a 96-bit
  PRF collision. The same identifier always gets the same ciphertext, which
  reveals only what the row's pseudonym already reveals (equality), and lets
  a rebuild write identical bytes. :meth:`VaultCipher.unseal` recomputes the
  nonce and refuses a blob whose nonce does not match.
* names (``deterministic=False``): a random 96-bit nonce per row
  (``os.urandom``). Names are not identifiers: nobody looks them up by
  equality, and a deterministic seal would show which customers share a
  name, so one known name would reveal all of them (decision 37).

blob = nonce (12 bytes) || ciphertext || tag (16 bytes).

The re-identification log
-------------------------
Every lookup appends one row to ``main.reidentification_log`` in the vault
file. Rows form a keyed hash chain: ``entry_hash = HMAC-SHA-256(log_key,
prev_hash || canonical row)`` with ``log_key`` derived from the master secret
(``cdp:vault:log-chain``), and ``seq`` counting from 1. The chain's head (last
seq and hash, under its own MAC) is also written to ``<vault>.loghead`` beside
the vault. ``python -m cdp.vault verify-log`` recomputes the chain and reports
an edited row (its hash does not match), a deleted row (a gap in ``seq`` or a
broken link), rows removed from the end (the head file is ahead of the table),
and a row written without the key (its MAC does not match).

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
    OWNER_ONLY_UMASK,
    KeyConfigError,
    MasterKey,
    load_master_key,
    pseudonym_key,
    vault_encryption_key,
    vault_log_key,
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
    request_id VARCHAR,
    seq BIGINT,
    prev_hash VARCHAR,
    entry_hash VARCHAR,
    pseudonym_commitment VARCHAR
)
"""
# A log created before these columns existed: added in place (its old rows are unchained).
LOG_MIGRATE: Final = tuple(
    f"ALTER TABLE main.{LOG_TABLE} ADD COLUMN IF NOT EXISTS {column} {ctype}"
    for column, ctype in (
        ("request_id", "VARCHAR"),
        ("seq", "BIGINT"),
        ("prev_hash", "VARCHAR"),
        ("entry_hash", "VARCHAR"),
        ("pseudonym_commitment", "VARCHAR"),
    )
)
#: The columns of a log row, in the order the chain hashes them.
CHAINED_COLUMNS: Final = (
    "log_id",
    "logged_at",
    "officer",
    "reason",
    "os_user",
    "action",
    "id_type",
    "pseudonym",
    "rows_returned",
    "outcome",
    "key_version",
    "tool",
    "request_id",
)
LOG_COLUMNS: Final = ", ".join(
    (*CHAINED_COLUMNS, "seq", "prev_hash", "entry_hash", "pseudonym_commitment")
)
_PSEUDONYM_AT: Final = CHAINED_COLUMNS.index("pseudonym")
GENESIS_HASH: Final = "0" * 64
HEAD_SUFFIX: Final = ".loghead"


class VaultError(RuntimeError):
    """A problem the officer can act on; the message says what to do."""


class VaultKeyMismatch(VaultError):
    """The configured master key does not open the vault's entries."""


class VaultTampered(VaultError):
    """An entry opens under the key but not for the row it sits in, or the log chain is broken."""


# --------------------------------------------------------------------------- sealing

AAD_LABEL: Final = b"cdp-vault/2"


def entry_aad(table: str, owner: str, kind: str, version: str) -> bytes:
    """The authenticated data of one vault entry: table, owner, kind and key version."""
    parts = (table, owner, kind, f"v{version}")
    if any("\x00" in part for part in parts):
        raise ValueError("a vault table, owner, kind or version must not contain a NUL character")
    return b"\x00".join((AAD_LABEL, *(part.encode("utf-8") for part in parts)))


class VaultCipher:
    """Seal and unseal vault entries for one key version. Holds keys: never printed."""

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

    def seal(
        self, table: str, owner: str, kind: str, value: str, *, deterministic: bool = True
    ) -> bytes:
        """nonce || AES-256-GCM(value, aad=entry_aad(...)) || tag.

        ``deterministic``: the nonce derives from the AAD and the value (identifiers);
        otherwise it is random (names).
        """
        aad = entry_aad(table, owner, kind, self.version)
        plaintext = value.encode("utf-8")
        nonce = self._nonce(aad, plaintext) if deterministic else os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def opens(self, blob: bytes, table: str, owner: str, kind: str) -> bool:
        """Whether the blob opens for this row (no exception; used to tell tampering from keys)."""
        data = bytes(blob)
        try:
            self._aead.decrypt(
                data[:NONCE_BYTES], data[NONCE_BYTES:], entry_aad(table, owner, kind, self.version)
            )
        except (InvalidTag, ValueError):
            return False
        return True

    def unseal(
        self, table: str, owner: str, kind: str, blob: bytes, *, deterministic: bool = True
    ) -> str:
        """The plaintext of a sealed blob for its row.

        :class:`VaultTampered` when the blob does not belong to this row (moved,
        swapped or edited), :class:`VaultKeyMismatch` when the key opens nothing.
        """
        aad = entry_aad(table, owner, kind, self.version)
        data = bytes(blob)
        if len(data) < NONCE_BYTES + TAG_BYTES:
            raise VaultTampered(f"a vault entry in {table} ({kind}) is truncated")
        nonce, body = data[:NONCE_BYTES], data[NONCE_BYTES:]
        try:
            plaintext = self._aead.decrypt(nonce, body, aad)
        except InvalidTag:
            raise VaultTampered(
                f"a vault entry in {table} ({kind}) does not authenticate for its row: it was "
                f"edited, moved from another row, or sealed with another master key. Run "
                f"`python -m cdp.vault verify` to check the whole vault; if every entry fails, "
                f"CDP_MASTER_KEY / CDP_MASTER_KEY_FILE is not the key the vault was built with "
                f"(key version v{self.version})"
            ) from None
        if deterministic and not hmac.compare_digest(nonce, self._nonce(aad, plaintext)):
            raise VaultTampered(
                f"a vault entry in {table} ({kind}) has a nonce that does not derive from its "
                f"content under key version v{self.version}"
            )
        return plaintext.decode("utf-8")


#: How each vault table's entries are sealed: owner column, kind column, deterministic nonce.
SEALED_TABLES: Final[dict[str, tuple[str, str, bool]]] = {
    "vault_identifiers": ("pseudonym", "id_type", True),
    "vault_customer_names": ("customer_key", "name_part", False),
}


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
    _ensure_log(con)
    restrict_file(target)
    return con


def _ensure_log(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(LOG_DDL)
    for statement in LOG_MIGRATE:
        con.execute(statement)


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


def _database_path(con: duckdb.DuckDBPyConnection) -> Path | None:
    row = con.execute(
        "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchone()
    return Path(str(row[0])) if row and row[0] else None


def head_path(vault_file: Path) -> Path:
    """Where the log chain's head is kept: ``<vault>.loghead`` beside the vault file."""
    return vault_file.with_name(vault_file.name + HEAD_SUFFIX)


def _canonical(values: Sequence[object]) -> bytes:
    def text(value: object) -> object:
        if isinstance(value, datetime):
            return value.isoformat(timespec="microseconds")
        return value

    return json.dumps([text(v) for v in values], ensure_ascii=True, separators=(",", ":")).encode(
        "ascii"
    )


def chain_hash(log_key: bytes, prev_hash: str, seq: int, values: Sequence[object]) -> str:
    """The keyed hash of one log row, linked to the previous row's hash."""
    message = prev_hash.encode("ascii") + b"\x00" + str(seq).encode("ascii") + b"\x00"
    return hmac.new(log_key, message + _canonical(values), hashlib.sha256).hexdigest()


def pseudonym_commitment(log_key: bytes, pseudonym_value: str | None) -> str | None:
    """What the chain hashes in place of a row's pseudonym (keyed: the log's key only).

    A row's pseudonym can then be redacted after an erasure (decision 49) without
    breaking the chain: the commitment stays and is what was hashed.
    """
    if pseudonym_value is None:
        return None
    message = b"pseudonym\x00" + pseudonym_value.encode("utf-8")
    return "c_" + hmac.new(log_key, message, hashlib.sha256).hexdigest()


def _chained_values(values: Sequence[object], commitment: str | None) -> list[object]:
    """The values a row's hash covers: its pseudonym replaced by its commitment, if it has one."""
    chained = list(values)
    if commitment is not None:
        chained[_PSEUDONYM_AT] = commitment
    return chained


def _head_mac(log_key: bytes, seq: int, entry_hash: str) -> str:
    message = f"head\x00{seq}\x00{entry_hash}".encode("ascii")
    return hmac.new(log_key, message, hashlib.sha256).hexdigest()


def _write_head(vault_file: Path, log_key: bytes, seq: int, entry_hash: str) -> None:
    path = head_path(vault_file)
    payload = json.dumps(
        {"seq": seq, "entry_hash": entry_hash, "mac": _head_mac(log_key, seq, entry_hash)}
    )
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, payload.encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def append_log(
    con: duckdb.DuckDBPyConnection,
    request: Request,
    *,
    master: MasterKey,
    id_type: str | None,
    pseudonym_value: str | None,
    rows_returned: int,
    outcome: str,
    key_version: str | None,
    request_id: str | None = None,
    tool: str = TOOL,
) -> None:
    """Append one chained row to ``main.reidentification_log`` (never a plaintext identifier).

    The row's hash links it to the previous one under a key derived from the
    master secret; the chain's head goes to ``<vault>.loghead``. Raises if the
    row cannot be written: nothing is revealed then.
    """
    _ensure_log(con)
    try:
        os_user = getpass.getuser()
    except Exception:
        os_user = None
    log_key = vault_log_key(master)
    values: list[object] = [
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
    ]
    con.execute("BEGIN TRANSACTION")
    try:
        last = con.execute(
            f"SELECT seq, entry_hash FROM main.{LOG_TABLE} WHERE seq IS NOT NULL "
            f"ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        seq = int(last[0]) + 1 if last else 1
        prev = str(last[1]) if last and last[1] else GENESIS_HASH
        commitment = pseudonym_commitment(log_key, pseudonym_value)
        entry = chain_hash(log_key, prev, seq, _chained_values(values, commitment))
        placeholders = ", ".join("?" for _ in range(len(CHAINED_COLUMNS) + 4))
        con.execute(
            f"INSERT INTO main.{LOG_TABLE} ({LOG_COLUMNS}) VALUES ({placeholders})",
            [*values, seq, prev, entry, commitment],
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    vault_file = _database_path(con)
    if vault_file is not None:
        _write_head(vault_file, log_key, seq, entry)


@dataclass(frozen=True)
class LogCheck:
    """What ``verify-log`` found: rows checked and every problem, in order."""

    rows: int
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_log(con: duckdb.DuckDBPyConnection, master: MasterKey) -> LogCheck:
    """Recompute the log's hash chain and compare it with the table and the head file."""
    _ensure_log(con)
    log_key = vault_log_key(master)
    rows = con.execute(
        f"SELECT {', '.join(CHAINED_COLUMNS)}, seq, prev_hash, entry_hash, pseudonym_commitment "
        f"FROM main.{LOG_TABLE} ORDER BY seq NULLS FIRST, logged_at"
    ).fetchall()
    problems: list[str] = []
    n = len(CHAINED_COLUMNS)
    unchained = [r for r in rows if r[n] is None]
    if unchained:
        problems.append(
            f"{len(unchained)} row(s) carry no chain position (written without the vault tool, "
            f"or before the log was chained)"
        )
    prev, expected_seq = GENESIS_HASH, 1
    for row in (r for r in rows if r[n] is not None):
        seq, prev_hash, entry_hash = int(row[n]), row[n + 1], row[n + 2]
        if seq != expected_seq:
            problems.append(
                f"row(s) {expected_seq}..{seq - 1} are missing (deleted)"
                if seq > expected_seq
                else f"row {seq} appears twice or out of order"
            )
        if prev_hash != prev:
            problems.append(f"row {seq} does not link to the row before it")
        commitment, held = row[n + 3], row[_PSEUDONYM_AT]
        if (
            commitment is not None
            and held is not None
            and (pseudonym_commitment(log_key, str(held)) != commitment)
        ):
            problems.append(f"row {seq} was edited (its pseudonym does not match its commitment)")
        if chain_hash(log_key, str(prev_hash), seq, _chained_values(row[:n], commitment)) != (
            entry_hash
        ):
            problems.append(f"row {seq} was edited (its hash does not match its content)")
        prev, expected_seq = str(entry_hash), seq + 1
    last_seq = expected_seq - 1
    vault_file = _database_path(con)
    head = head_path(vault_file) if vault_file is not None else None
    if head is not None and head.is_file():
        try:
            recorded = json.loads(head.read_text(encoding="ascii"))
            head_seq, head_hash = int(recorded["seq"]), str(recorded["entry_hash"])
            head_ok = hmac.compare_digest(
                str(recorded["mac"]), _head_mac(log_key, head_seq, head_hash)
            )
        except (ValueError, KeyError, TypeError, OSError):
            head_ok, head_seq, head_hash = False, 0, ""
        if not head_ok:
            problems.append(f"the chain head {head} is unreadable or was not written by the tool")
        elif head_seq > last_seq:
            problems.append(
                f"the log ends at row {last_seq} but its head says {head_seq}: "
                f"{head_seq - last_seq} row(s) were removed from the end"
            )
        elif head_seq == last_seq and head_hash != prev:
            problems.append(f"the last row ({last_seq}) differs from the one the head records")
    elif last_seq > 0:
        problems.append(f"the chain head {head} is missing (deleted?)")
    return LogCheck(rows=len(rows), problems=tuple(problems))


def redact_log(con: duckdb.DuckDBPyConnection, pseudonyms: Sequence[str]) -> tuple[int, int]:
    """Null the pseudonym of log rows about erased identifiers (decision 49); (redacted, kept).

    Rows written with a commitment keep their place in the chain; rows written before
    commitments existed cannot be redacted without breaking it and are counted as kept.
    The caller owns the transaction.
    """
    _ensure_log(con)
    if not pseudonyms:
        return 0, 0
    counts = con.execute(
        f"SELECT count(*) FILTER (WHERE pseudonym_commitment IS NOT NULL), "
        f"count(*) FILTER (WHERE pseudonym_commitment IS NULL) "
        f"FROM main.{LOG_TABLE} WHERE pseudonym IN (SELECT unnest(?))",
        [list(pseudonyms)],
    ).fetchall()[0]
    con.execute(
        f"UPDATE main.{LOG_TABLE} SET pseudonym = NULL "
        f"WHERE pseudonym_commitment IS NOT NULL AND pseudonym IN (SELECT unnest(?))",
        [list(pseudonyms)],
    )
    return int(counts[0]), int(counts[1])


@dataclass(frozen=True)
class EntryCheck:
    """What ``verify`` found in the sealed tables: entries checked and the ones that fail."""

    entries: int
    problems: tuple[str, ...]


def verify_entries(con: duckdb.DuckDBPyConnection, master: MasterKey) -> EntryCheck:
    """Check that every sealed entry opens for the row it sits in (no swap, no edit)."""
    ciphers: dict[str, VaultCipher] = {}
    problems: list[str] = []
    total = 0
    for table, (owner_column, kind_column, deterministic) in SEALED_TABLES.items():
        if not _table_exists(con, table):
            continue
        sealed = _sealed_column(con, table)
        rows = con.execute(
            f"SELECT {owner_column}, {kind_column}, {sealed}, key_version FROM main.{table} "
            f"WHERE {sealed} IS NOT NULL"
        ).fetchall()
        bad = 0
        for owner, kind, blob, version_label in rows:
            total += 1
            version = parse_version(str(version_label))
            if version not in ciphers:
                ciphers[version] = VaultCipher.from_master(master, version)
            try:
                ciphers[version].unseal(
                    table, str(owner), str(kind), bytes(blob), deterministic=deterministic
                )
            except VaultError:
                bad += 1
        if bad:
            problems.append(f"{bad} of {len(rows)} entries of {table} do not open for their row")
    return EntryCheck(entries=total, problems=tuple(problems))


def _decrypt_rows(
    rows: Sequence[tuple[str, str, str, bytes, str]],
    cipher_for: Callable[[str], VaultCipher],
) -> list[Identifier]:
    """Open ``(table, owner, kind, blob, key_version)`` rows; each must belong to its row."""
    out = []
    for table, owner, kind, blob, version_label in rows:
        version = parse_version(version_label)
        deterministic = SEALED_TABLES.get(table, ("", "", True))[2]
        value = cipher_for(version).unseal(table, owner, kind, blob, deterministic=deterministic)
        out.append(Identifier(table, kind, value, f"v{version}"))
    return out


def _key_opens_vault(
    con: duckdb.DuckDBPyConnection, cipher_for: Callable[[str], VaultCipher], sample: int = 20
) -> bool:
    """Whether the key opens any identifier entry for its own row (a key, not a tamper, check)."""
    if not _table_exists(con, IDENTIFIERS_TABLE):
        return False
    sealed = _sealed_column(con, IDENTIFIERS_TABLE)
    rows = con.execute(
        f"SELECT pseudonym, id_type, {sealed}, key_version FROM main.{IDENTIFIERS_TABLE} "
        f"WHERE {sealed} IS NOT NULL LIMIT ?",
        [sample],
    ).fetchall()
    for owner, kind, blob, version in rows:
        try:
            cipher = cipher_for(parse_version(str(version)))
        except VaultError:
            continue
        if cipher.opens(bytes(blob), IDENTIFIERS_TABLE, str(owner), str(kind)):
            return True
    return False


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
    rows: list[tuple[str, str, str, bytes, str]] = [
        (IDENTIFIERS_TABLE, pseudonym_value, str(r[0]), bytes(r[1]), str(r[2]))
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
            (NAMES_TABLE, pseudonym_value, str(r[0]), bytes(r[1]), str(r[2]))
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

    versions = ",".join(sorted({r[4] for r in rows})) or master.version_label
    try:
        found = _decrypt_rows(rows, cipher_for)
    except VaultError as exc:
        mismatch = not _key_opens_vault(con, cipher_for)
        append_log(
            con,
            request,
            master=master,
            id_type=None,
            pseudonym_value=pseudonym_value,
            rows_returned=0,
            outcome="key_mismatch" if mismatch else "entry_not_authentic",
            key_version=versions,
        )
        if mismatch:
            raise VaultKeyMismatch(
                f"the configured master key does not open the vault's entries: it does not "
                f"match the vault's key version v{master.version}. Set CDP_MASTER_KEY / "
                f"CDP_MASTER_KEY_FILE to the master key the vault was built with (and "
                f"CDP_KEY_VERSION to its version)"
            ) from None
        raise exc
    append_log(
        con,
        request,
        master=master,
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
            master=master,
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
        master=master,
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
        prog="cdp vault",
        description=(
            "The privacy officer's re-identification tool. Every request is logged to "
            "main.reidentification_log in the vault file (who, why, when, what was asked, "
            "how many rows; never the plaintext) before anything is shown. The master key "
            "comes from CDP_MASTER_KEY or CDP_MASTER_KEY_FILE, as for the build."
        ),
        epilog="exit status: 0 found (or verified), 3 nothing found, 4 verification failed, "
        "1 error, 2 usage error",
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
    sub.add_parser(
        "verify-log",
        help="check the re-identification log's hash chain: reports an edited, deleted or "
        "forged entry (exit 4 if any)",
    )
    sub.add_parser(
        "verify",
        help="check that every sealed vault entry opens for the row it sits in (no swapped or "
        "edited entry) and the log's chain (exit 4 if anything fails)",
    )
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
    os.umask(OWNER_ONLY_UMASK)  # the log, the head file and DuckDB's WAL are owner-only
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
            if args.command in ("verify-log", "verify"):
                master = load_master_key()
                problems: list[str] = []
                if args.command == "verify":
                    entries = verify_entries(con, master)
                    problems += entries.problems
                    print(f"vault entries checked: {entries.entries}")
                chain = verify_log(con, master)
                problems += chain.problems
                print(f"log rows checked: {chain.rows}")
                for problem in problems:
                    print(f"FAIL: {problem}")
                if not problems:
                    print("OK: every entry authentic, the log's chain intact")
                return 4 if problems else 0
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
