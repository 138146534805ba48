"""Key rotation re-keys the purge's kept consent scopes (``audit.consent_scopes``, raw zone).

The purge keeps, as consent proof, one row per judged withdrawal, restriction or ambiguous
grant and identifier pseudonym of its scope (docs/decisions.md, 71). Every value that the
consent models join it on is a keyed pseudonym of the identity domain, which carries the key
version: the member (``member_key``, an identifier's pseudonym) and the judged event
(``event_id``: a consent event's, a request's or a message event's pseudonym, or an opt-out
id built from one, ``objection:<request key>:<purpose>``). A rebuild under a new key version
re-pseudonymises the warehouse but cannot touch this raw table, so without this step a split
person's withdrawal stops reaching the other part: consent given back (decision 74).

HMAC is one way; re-keying needs each pseudonym's preimage, under the current key:

* a member: the vault (``main.vault_identifiers``) holds each identifier sealed for its
  pseudonym and id type; it is unsealed, checked to pseudonymise to the same old value, and
  pseudonymised under the new version with :func:`cdp.pseudonym.pseudonym`, the function
  the dbt plugin's macro is proved equal to, so staging's new pseudonyms match bit for bit;
* an event token: the raw zone holds the raw keys (``RAW_KEYS``); each is normalised by the
  same SQL expression as staging's ``normalise_key`` and pseudonymised under the old and the
  new version in Python.

A row whose member or event cannot be mapped (its identifier left the vault, its event the
raw zone) could reach nobody after the rebuild: it is deleted, in the same transaction, with
one destruction record (reason ``key_rotation_unmappable``). Plaintext identifiers exist only
in this process's memory: the SQL binds pseudonyms only, the key stays in Python, and no
message names a value.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import getpass
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import duckdb
import pyarrow as pa

from cdp.keys import MasterKey, pseudonym_key
from cdp.pseudonym import TOKEN, pseudonym
from cdp.purge.categories import load_categories
from cdp.purge.core import LOG_TABLE
from cdp.purge.records import LOG_COLUMNS, DestructionRecord
from cdp.purge.scopes import SCOPE_TABLE
from cdp.vault import IDENTIFIERS_TABLE, VaultCipher, parse_version

#: The raw keys whose pseudonyms a scope's event_id holds: (id type, raw table, column), as
#: staging pseudonymises them (stg_privacy__consent_events_triaged, stg_privacy__subject_
#: requests_triaged, stg_messaging__message_events_triaged; decision 50).
RAW_KEYS: Final[tuple[tuple[str, str, str], ...]] = (
    ("consent_event_id", "privacy.consent_events", "consent_event_id"),
    ("request_id", "privacy.subject_requests", "request_id"),
    ("message_event_id", "messaging.message_events", "message_event_id"),
)
#: staging's normalise_key (macros/privacy/normalise.sql), run by DuckDB itself: the same bytes.
_NORMALISE_KEY_SQL: Final = "nullif(trim({column}), '')"
UNMAPPABLE_REASON: Final = "key_rotation_unmappable"
TOOL: Final = "cdp.rotate"


class ScopeRekeyError(RuntimeError):
    """The scopes cannot be re-keyed safely; nothing was written."""


@dataclass
class ScopeRekey:
    """What re-keying found (and, unless a dry run, did) in ``audit.consent_scopes``."""

    rows: int = 0
    rekeyed: int = 0
    current: int = 0
    deleted: int = 0
    members_unmapped: int = 0
    events_unmapped: int = 0

    def summary(self) -> str:
        return (
            f"consent scopes: {self.rows} row(s), {self.rekeyed} re-keyed, {self.current} "
            f"already current, {self.deleted} deleted as unmappable ({self.members_unmapped} "
            f"member(s) not in the vault, {self.events_unmapped} event(s) not in the raw zone)"
        )


def _table_exists(con: duckdb.DuckDBPyConnection, qualified: str) -> bool:
    schema, table = qualified.split(".")
    row = con.execute(
        "select count(*) from duckdb_tables() where schema_name = ? and table_name = ?",
        [schema, table],
    ).fetchall()
    return bool(row and row[0][0])


def _keys(master: MasterKey, versions: Iterable[str]) -> dict[str, bytes]:
    """The identity-domain HMAC key of each version (same master secret)."""
    return {v: pseudonym_key(dataclasses.replace(master, version=v), "identity") for v in versions}


def _old_tokens(values: Iterable[str | None], target: str) -> set[str]:
    return {
        match.group(0)
        for value in values
        if value
        for match in TOKEN.finditer(value)
        if match.group(1) != target
    }


def _member_map(vault: Path, master: MasterKey, wanted: set[str], target: str) -> dict[str, str]:
    """old member pseudonym -> new one, through the vault (unsealed in memory only)."""
    if not wanted or not vault.is_file():
        return {}
    con = duckdb.connect(str(vault), read_only=True)
    try:
        if not _table_exists(con, f"main.{IDENTIFIERS_TABLE}"):
            return {}
        names = {
            str(r[0])
            for r in con.execute(
                "select column_name from duckdb_columns() where schema_name = 'main' "
                "and table_name = ?",
                [IDENTIFIERS_TABLE],
            ).fetchall()
        }
        sealed = next((n for n in ("sealed", "sealed_value") if n in names), None)
        if sealed is None:
            raise ScopeRekeyError(f"main.{IDENTIFIERS_TABLE} in the vault has no sealed column")
        rows = con.execute(
            f"select pseudonym, id_type, {sealed}, key_version from main.{IDENTIFIERS_TABLE} "
            f"where pseudonym in (select unnest(?)) and {sealed} is not null",
            [sorted(wanted)],
        ).fetchall()
    finally:
        con.close()
    ciphers: dict[str, VaultCipher] = {}
    versions = {parse_version(str(r[3])) for r in rows} | {target}
    keys = _keys(master, versions)
    out: dict[str, str] = {}
    for owner, id_type, blob, label in rows:
        version = parse_version(str(label))
        if version not in ciphers:
            ciphers[version] = VaultCipher.from_master(master, version)
        # VaultTampered (a swapped or edited entry) stops the rotation: nothing written.
        value = ciphers[version].unseal(IDENTIFIERS_TABLE, str(owner), str(id_type), bytes(blob))
        if pseudonym(keys[version], version, str(id_type), value) != owner:
            raise ScopeRekeyError(
                "a vault entry does not pseudonymise to the pseudonym it is sealed for; run "
                "`python -m cdp.vault verify`; nothing was changed"
            )
        new = pseudonym(keys[target], target, str(id_type), value)
        if new is not None:
            out[str(owner)] = new
    return out


def _event_map(
    raw: duckdb.DuckDBPyConnection, master: MasterKey, wanted: set[str], target: str
) -> dict[str, str]:
    """old event-key pseudonym -> new one, through the raw keys of the landing zone."""
    out: dict[str, str] = {}
    if not wanted:
        return out
    versions = {m.group(1) for m in map(TOKEN.fullmatch, wanted) if m}
    keys = _keys(master, versions | {target})
    for id_type, table, column in RAW_KEYS:
        if not _table_exists(raw, table):
            continue
        normalised = _NORMALISE_KEY_SQL.format(column=column)
        values = raw.execute(
            f"select distinct {normalised} from {table} where {normalised} is not null"
        ).fetchall()
        for (value,) in values:
            for version in versions:
                old = pseudonym(keys[version], version, id_type, str(value))
                if old in wanted and old not in out:
                    new = pseudonym(keys[target], target, id_type, str(value))
                    if new is not None:
                        out[old] = new
    return out


def _rewrite(text: str, mapping: Mapping[str, str], target: str) -> str | None:
    """Every old token of ``text`` replaced, or None when one cannot be."""
    missing = False

    def swap(match: re.Match[str]) -> str:
        nonlocal missing
        if match.group(1) == target:
            return match.group(0)
        new = mapping.get(match.group(0))
        if new is None:
            missing = True
            return match.group(0)
        return new

    out = TOKEN.sub(swap, text)
    return None if missing else out


def rekey_scopes(
    raw_db: Path,
    vault_db: Path,
    master: MasterKey,
    target: str,
    *,
    dry_run: bool = False,
    operator: str | None = None,
) -> ScopeRekey:
    """Re-key ``audit.consent_scopes`` to key version ``target`` in one raw-zone transaction.

    ``master`` must be the key the vault was built with (the rotation checks it opens the
    vault first). Rows already at ``target`` are left alone, so a repeated rotation is safe.
    """
    report = ScopeRekey()
    if not raw_db.is_file():
        return report
    con = duckdb.connect(str(raw_db), read_only=dry_run)
    try:
        if not _table_exists(con, SCOPE_TABLE):
            return report
        rows = con.execute(
            f"select rowid, scope_kind, event_id, member_key, event_at from {SCOPE_TABLE}"
        ).fetchall()
        report.rows = len(rows)
        members = _member_map(vault_db, master, _old_tokens((r[3] for r in rows), target), target)
        events = _event_map(con, master, _old_tokens((r[2] for r in rows), target), target)
        new_member: dict[int, str | None] = {}
        new_event: dict[int, str | None] = {}
        for row_id, _, event_id, member_key, _ in rows:
            new_member[row_id] = _rewrite(str(member_key), members, target)
            new_event[row_id] = _rewrite(str(event_id), events, target)
        # An event that cannot be mapped takes its whole scope; a member only its own row.
        lost_events = {(r[1], r[2]) for r in rows if new_event[r[0]] is None}
        report.events_unmapped = len(lost_events)
        report.members_unmapped = len(
            {r[3] for r in rows if new_member[r[0]] is None and (r[1], r[2]) not in lost_events}
        )
        doomed = [r for r in rows if (r[1], r[2]) in lost_events or new_member[r[0]] is None]
        doomed_ids = {r[0] for r in doomed}
        changed = [
            (r[0], new_member[r[0]], new_event[r[0]])
            for r in rows
            if r[0] not in doomed_ids and (new_member[r[0]] != r[3] or new_event[r[0]] != r[2])
        ]
        report.deleted = len(doomed)
        report.rekeyed = len(changed)
        report.current = report.rows - report.deleted - report.rekeyed
        if dry_run or not (changed or doomed):
            return report
        con.execute("begin transaction")
        try:
            if changed:
                con.register(
                    "rotate_scope_keys",
                    pa.table(
                        {
                            "row_id": pa.array([c[0] for c in changed], pa.int64()),
                            "member_key": pa.array([c[1] for c in changed], pa.string()),
                            "event_id": pa.array([c[2] for c in changed], pa.string()),
                        }
                    ),
                )
                con.execute(
                    f"update {SCOPE_TABLE} as scopes set member_key = keyed.member_key, "
                    f"event_id = keyed.event_id from rotate_scope_keys as keyed "
                    f"where scopes.rowid = keyed.row_id"
                )
                con.unregister("rotate_scope_keys")
            if doomed:
                con.execute(
                    f"delete from {SCOPE_TABLE} where rowid in (select unnest(?))",
                    [sorted(doomed_ids)],
                )
                _record(con, doomed, operator)
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
    finally:
        con.close()
    return report


def _record(
    con: duckdb.DuckDBPyConnection,
    doomed: list[tuple[int, str, str, str, dt.datetime | None]],
    operator: str | None,
) -> None:
    """One destruction record for the unmappable rows (no subject: their pseudonyms resolve
    to nothing any more, and naming them would keep what was just destroyed)."""
    categories = load_categories()
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    times = [r[4] for r in doomed if r[4] is not None]
    record = DestructionRecord(
        destruction_id=str(uuid.uuid4()),
        run_id=str(uuid.uuid4()),
        destroyed_at=now,
        as_of=now,
        source_table=SCOPE_TABLE,
        source_batch_id=None,
        data_category="consent_records",
        subject_id_type=None,
        subject_key=None,
        reason=UNMAPPABLE_REASON,
        method="delete_rows",
        fields=None,
        row_count=len(doomed),
        oldest_record_at=min(times) if times else None,
        newest_record_at=max(times) if times else None,
        retention_days=categories["consent_records"].retention_days,
        legal_reference=categories["consent_records"].legal_reference,
        keep_until=now + dt.timedelta(days=categories["destruction_records"].retention_days),
        operator=operator or getpass.getuser(),
        tool=TOOL,
    )
    columns = ",\n    ".join(f"{name} {ctype}" for name, ctype in LOG_COLUMNS)
    con.execute(f"create table if not exists {LOG_TABLE} (\n    {columns}\n)")
    names = [name for name, _ in LOG_COLUMNS]
    con.register(
        "rotate_records_arrow", pa.Table.from_pylist([dataclasses.asdict(record)]).select(names)
    )
    con.execute(
        f"insert into {LOG_TABLE} ({', '.join(names)}) "
        f"select {', '.join(names)} from rotate_records_arrow"
    )
    con.unregister("rotate_records_arrow")
