"""Subject access and portability: everything held on one person, for the privacy officer.

::

    python -m cdp.access export --id-type email --value - --officer NAME --reason TEXT \\
        --request-id DSR-0000042 --out export.json [--summary summary.txt]

The subject is located through the vault and the warehouse's identity map:
the identifier given is normalised and pseudonymised as staging does, the
person it belongs to *alone* is read from the warehouse
(``intermediate.int_consent__subject_persons``; an identifier shared by
several persons is refused: its data is not one person's to disclose), and the
vault decrypts every identifier and name held for that person. The raw zone is
then read (read-only) for every row carrying one of those identifiers, after
the same normalisation. The export (JSON, machine-readable, GDPR art. 15 and
20, 152-FZ art. 14 p. 7) holds:

``identifiers``     every identifier and name the vault holds for the person
``profile``         the unified profile row, if the person is profiled
``consents``        per purpose: in force or not, since when, with evidence, and
                    every consent-log row with its evidence reference
``orders``          every order version and line
``events_summary``  site events and messages, counted by type, first and last
``purposes``        every purpose the person's data serves: legal basis,
                    recipients, data categories and their retention
``requests``        the person's subject requests, with due and closed dates
``raw_records``     every raw row held on the person, per landing table

Only the officer's command runs it: ``--officer`` and ``--reason`` are
required, and one row goes to the vault's ``main.reidentification_log``
(action ``access_export``, the request id, the pseudonym asked for, how many
rows) *before* anything is written or printed; if the log cannot be written,
nothing is revealed. The JSON file is created owner-only. Identifiers given on
the command line are bound SQL parameters, never SQL text.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import decimal
import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import duckdb

from cdp import keys, normalise, paths, pseudonym, purge, sources, vault
from cdp.keys import OWNER_ONLY_UMASK

TOOL: Final = "cdp.access"
ACTION: Final = "access_export"
MAX_VALUE_CHARS: Final = 512
_REQUEST_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")


def raw_identifier_columns() -> dict[str, tuple[tuple[str, str], ...]]:
    """Landing tables and their identifier columns, (column, identifier type), from the
    sources' metadata (cdp.sources): a recipient column counts for each recipient type."""
    found: dict[str, tuple[tuple[str, str], ...]] = {}
    for table in sources.landing_tables():
        pairs = list(table.identifier_columns)
        for column, _channel in table.channel_columns:
            pairs += [(column, t) for t in sorted(set(purge.RECIPIENT_TYPES.values()))]
        if pairs:
            found[table.qualified] = tuple(pairs)
    return found


class AccessError(Exception):
    """A problem the officer can act on; the message says what to do (never an identifier)."""


@dataclass(frozen=True)
class AccessExport:
    request_id: str | None
    person_key: str | None
    data: dict[str, Any]

    def to_json(self) -> str:
        return json.dumps(self.data, indent=2, ensure_ascii=False, default=_encode)

    def summary(self) -> str:
        return render_summary(self.data)


def _encode(value: object) -> object:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray):
        return None
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    return str(value)


def _rows(cursor: Any) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def check_request_id(request_id: str | None) -> str | None:
    if request_id is None:
        return None
    if not _REQUEST_ID.fullmatch(request_id):
        raise AccessError(
            "--request-id must be the desk's request id: letters, digits and . _ : - only, "
            "at most 64 characters"
        )
    return request_id


def _load_csv(name: str) -> list[dict[str, str]]:
    with (paths.project_dir() / "seeds" / name).open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _table_exists(con: Any, catalog: str, schema: str, table: str) -> bool:
    row = con.execute(
        "select count(*) from information_schema.tables "
        "where table_catalog = ? and table_schema = ? and table_name = ?",
        [catalog, schema, table],
    ).fetchone()
    return bool(row and row[0])


def _person_of(wh: Any, subject_key: str) -> tuple[str | None, int]:
    """The one person the identifier belongs to alone (or None), and how many candidates."""
    rows = wh.execute(
        "select person_key, is_unambiguous from intermediate.int_consent__subject_persons "
        "where subject_key = ?",
        [subject_key],
    ).fetchall()
    owners = sorted({str(r[0]) for r in rows if r[1]})
    if len(owners) == 1:
        return owners[0], len(rows)
    return None, len(rows)


def _vault_entries(
    vcon: duckdb.DuckDBPyConnection, master: keys.MasterKey, subject_keys: Sequence[str]
) -> list[vault.Identifier]:
    out: list[vault.Identifier] = []
    ciphers: dict[str, vault.VaultCipher] = {}

    def cipher_for(version: str) -> vault.VaultCipher:
        if version not in ciphers:
            ciphers[version] = vault.VaultCipher.from_master(master, version)
        return ciphers[version]

    for table, key_column, type_column in (
        (vault.IDENTIFIERS_TABLE, "pseudonym", "id_type"),
        (vault.NAMES_TABLE, "customer_key", "name_part"),
    ):
        present = vcon.execute(
            "select count(*) from information_schema.tables "
            "where table_schema = 'main' and table_name = ?",
            [table],
        ).fetchone()
        if not present or not present[0]:
            continue
        sealed = vault._sealed_column(vcon, table)
        columns = {c[0] for c in vcon.execute(f"describe main.{table}").fetchall()}
        kind = type_column if type_column in columns else "attribute"
        rows = vcon.execute(
            f"select ? as tbl, {key_column}, {kind}, {sealed}, key_version from main.{table} "
            f"where {key_column} in (select unnest(?)) and {sealed} is not null "
            f"order by {kind}",
            [table, list(subject_keys)],
        ).fetchall()
        out += vault._decrypt_rows(
            [(str(r[0]), str(r[1]), str(r[2]), bytes(r[3]), str(r[4])) for r in rows], cipher_for
        )
    return out


def _raw_records(raw: Any, identifiers: Mapping[str, set[str]]) -> dict[str, list[dict[str, Any]]]:
    """Every raw row carrying one of the person's (normalised) identifiers."""
    records: dict[str, list[dict[str, Any]]] = {}

    def matches(id_type: str, values: Sequence[object]) -> list[str]:
        wanted = identifiers.get(id_type, set())
        if not wanted:
            return []
        found = []
        for value in values:
            if not isinstance(value, str):
                continue
            try:
                if normalise.normalise_identifier(id_type, value) in wanted:
                    found.append(value)
            except ValueError:
                continue
        return found

    tables = sources.landing_tables()
    for table, columns in raw_identifier_columns().items():
        conditions: list[str] = []
        params: list[object] = []
        for column, id_type in columns:
            distinct = [
                r[0] for r in raw.execute(f"select distinct {column} from {table}").fetchall()
            ]
            hits = matches(id_type, distinct)
            if hits:
                conditions.append(f"{column} in (select unnest(?))")
                params.append(hits)
        if not conditions:
            records[table] = []
            continue
        records[table] = _rows(
            raw.execute(
                f"select * from {table} where {' or '.join(conditions)} order by all", params
            )
        )
    # Rows that belong to a row found above (order lines to their order) go with it.
    for child in tables:
        if child.parent is None:
            continue
        parent, key = child.parent
        parent_keys = sorted({str(r[key]) for r in records.get(parent, []) if r.get(key)})
        records[child.qualified] = _rows(
            raw.execute(
                f"select * from {child.qualified} where {key} in (select unnest(?)) order by all",
                [parent_keys],
            )
        )
    # Rows whose subject is typed by a column of the row (consent events, requests).
    for subject_table in tables:
        for column, type_column in subject_table.typed_columns:
            pairs = raw.execute(
                f"select distinct lower(trim({type_column})), {column} "
                f"from {subject_table.qualified}"
            ).fetchall()
            hits_by_type: dict[str, list[str]] = {}
            for id_type, value in pairs:
                if id_type in normalise.IDENTIFIER_NORMALISERS and matches(id_type, [value]):
                    hits_by_type.setdefault(id_type, []).append(value)
            rows: list[dict[str, Any]] = records.get(subject_table.qualified, [])
            for id_type, values in sorted(hits_by_type.items()):
                rows += _rows(
                    raw.execute(
                        f"select * from {subject_table.qualified} "
                        f"where lower(trim({type_column})) = ? "
                        f"and {column} in (select unnest(?)) order by all",
                        [id_type, values],
                    )
                )
            records[subject_table.qualified] = rows
    return records


def _warehouse_view(wh: Any, person_key: str) -> dict[str, Any]:
    def query(sql: str, table: tuple[str, str]) -> list[dict[str, Any]]:
        if not _table_exists(wh, "wh", *table):
            return []
        return _rows(wh.execute(sql, [person_key]))

    return {
        "profile": query(
            "select * from marts.dim_customer_profile where person_key = ?",
            ("marts", "dim_customer_profile"),
        ),
        "consent_status": query(
            "select purpose_code, is_consented, is_permitted, consent_valid_from, consent_channel, "
            "policy_version, evidence_ref, last_withdrawn_at, last_withdrawal_origin, "
            "is_restricted, restriction_type, restricted_since "
            "from intermediate.int_consent__person_purposes where person_key = ? order by purpose_code",
            ("intermediate", "int_consent__person_purposes"),
        ),
        "requests": query(
            "select request_id, request_type, jurisdiction, received_at, is_verified, due_date, "
            "deadline_count, deadline_unit, legal_reference, request_status, closed_by, closed_at, "
            "is_overdue from intermediate.int_rights__request_tracking where person_key = ? "
            "order by received_at",
            ("intermediate", "int_rights__request_tracking"),
        ),
    }


def _events_summary(records: Mapping[str, list[dict[str, Any]]]) -> dict[str, Any]:
    def summarise(rows: list[dict[str, Any]], by: Sequence[str], at: str) -> list[dict[str, Any]]:
        groups: dict[tuple[object, ...], list[dict[str, Any]]] = {}
        for row in rows:
            groups.setdefault(tuple(row.get(k) for k in by), []).append(row)
        out = []
        for key, members in sorted(groups.items(), key=lambda kv: [str(k) for k in kv[0]]):
            times = [m[at] for m in members if m.get(at) is not None]
            out.append(
                {
                    **dict(zip(by, key, strict=True)),
                    "count": len(members),
                    "first_at": min(times) if times else None,
                    "last_at": max(times) if times else None,
                }
            )
        return out

    return {
        "site_events": summarise(list(records.get("web.events", [])), ["event_type"], "event_at"),
        "messages": summarise(
            list(records.get("messaging.message_events", [])), ["channel", "event_type"], "event_at"
        ),
    }


def _purposes(consent_status: list[dict[str, Any]]) -> list[dict[str, Any]]:
    categories = {row["data_category"]: row for row in _load_csv("data_categories.csv")}
    status = {row["purpose_code"]: row for row in consent_status}
    out = []
    for purpose in _load_csv("purposes.csv"):
        code = purpose["purpose_code"]
        needs_consent = purpose["is_consent_required"].lower() == "true"
        if needs_consent and code not in status:
            continue  # a consent purpose the person never consented to: nothing processed for it
        out.append(
            {
                "purpose_code": code,
                "purpose_name": purpose["purpose_name"],
                "description": purpose["description"],
                "legal_basis": purpose["legal_basis"],
                "legal_reference": purpose["legal_reference"],
                "recipients": [r.strip() for r in purpose["recipients"].split(";") if r.strip()],
                "is_permitted_now": status[code]["is_permitted"] if code in status else None,
                "data_categories": [
                    {
                        "data_category": c,
                        "description": categories[c]["description"] if c in categories else None,
                        "retention_days": int(categories[c]["retention_days"])
                        if c in categories
                        else None,
                        "retention_from": categories[c]["retention_anchor"]
                        if c in categories
                        else None,
                        "retention_basis": categories[c]["retention_basis"]
                        if c in categories
                        else None,
                    }
                    for c in purpose["data_categories"].split(";")
                    if c
                ],
            }
        )
    return out


def export(
    *,
    id_type: str,
    value: str,
    officer: str | None,
    reason: str | None,
    request_id: str | None = None,
    raw_db: Path | None = None,
    warehouse_db: Path | None = None,
    vault_db: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> AccessExport:
    """Everything held on the person the identifier belongs to; logged in the vault first."""
    try:
        request = vault._check_request(officer, reason, ACTION)
    except vault.VaultError as exc:
        raise AccessError(str(exc)) from None
    request_id = check_request_id(request_id)
    if id_type not in normalise.IDENTIFIER_NORMALISERS:
        raise AccessError(
            f"--id-type must be one of {', '.join(sorted(normalise.IDENTIFIER_NORMALISERS))}"
        )
    if not isinstance(value, str) or len(value) > MAX_VALUE_CHARS:
        raise AccessError(f"--value must be an identifier of at most {MAX_VALUE_CHARS} characters")
    try:
        master = keys.load_master_key(environ)
    except keys.KeyConfigError as exc:
        raise AccessError(str(exc)) from None
    raw_path = raw_db or paths.raw_db()
    wh_path = warehouse_db or paths.warehouse_db()
    for label, path in (("landing zone", raw_path), ("warehouse", wh_path)):
        if not path.is_file():
            raise AccessError(f"no {label} at {path}: set the CDP_* path or build first")
    try:
        vcon = vault.open_vault(vault_db)
    except vault.VaultError as exc:
        raise AccessError(str(exc)) from None
    try:
        normalised = normalise.normalise_identifier(id_type, value)
        subject_key = (
            None
            if normalised is None
            else pseudonym.pseudonym(
                keys.pseudonym_key(master, "identity"), master.version, id_type, normalised
            )
        )

        def log(outcome: str, rows: int) -> None:
            vault.append_log(
                vcon,
                request,
                master=master,
                id_type=id_type,
                pseudonym_value=subject_key,
                rows_returned=rows,
                outcome=outcome,
                key_version=master.version_label,
                request_id=request_id,
                tool=TOOL,
            )

        if subject_key is None:
            log("invalid_value", 0)
            raise AccessError(f"not a valid {id_type} after normalisation")
        wh = duckdb.connect(":memory:")
        try:
            wh.execute("attach ? as wh (read_only)", [str(wh_path)])
            wh.execute("use wh")
            person_key, candidates = _person_of(wh, subject_key)
            if person_key is None:
                log("ambiguous" if candidates else "not_found", 0)
                if candidates:
                    raise AccessError(
                        f"the identifier may belong to {candidates} persons (identity resolution "
                        "refused it as shared or junk): ask the subject for an identifier of their own"
                    )
                raise AccessError("the warehouse holds no person with this identifier")
            person_keys = [
                str(r[0])
                for r in wh.execute(
                    "select distinct subject_key from intermediate.int_consent__subject_persons "
                    "where person_key = ? and is_unambiguous order by 1",
                    [person_key],
                ).fetchall()
            ]
            warehouse = _warehouse_view(wh, person_key)
        finally:
            wh.close()
        try:
            entries = _vault_entries(vcon, master, person_keys)
        except vault.VaultError as exc:
            log("key_mismatch", 0)
            raise AccessError(str(exc)) from None
        identifiers: dict[str, set[str]] = {}
        for entry in entries:
            if entry.table == vault.IDENTIFIERS_TABLE:
                identifiers.setdefault(entry.id_type, set()).add(entry.value)
        identifiers.setdefault(id_type, set()).add(normalised or "")
        try:
            raw = duckdb.connect(str(raw_path), read_only=True)
        except duckdb.Error as exc:
            raise AccessError(
                f"cannot open the landing zone read-only ({type(exc).__name__}); "
                "wait until no purge or loader holds it"
            ) from None
        try:
            records = _raw_records(raw, identifiers)
        finally:
            raw.close()
        total = sum(len(v) for v in records.values())
        # Logged before anything is revealed: if this fails, the caller gets nothing.
        log("ok", total)
    finally:
        vcon.close()
    data: dict[str, Any] = {
        "export_format": "cdp.access/1",
        "generated_at": dt.datetime.now(dt.UTC).replace(tzinfo=None),
        "request_id": request_id,
        "located_by": {"id_type": id_type, "pseudonym": subject_key},
        "person_key": person_key,
        "identifiers": [
            {"source": e.table, "type": e.id_type, "value": e.value}
            for e in entries
            if e.table == vault.IDENTIFIERS_TABLE
        ],
        "names": [
            {"part": e.id_type, "value": e.value} for e in entries if e.table == vault.NAMES_TABLE
        ],
        "profile": warehouse["profile"][0] if warehouse["profile"] else None,
        "consents": {
            "status": warehouse["consent_status"],
            "events": records.get("privacy.consent_events", []),
        },
        "orders": {
            "orders": records.get("shop.orders", []),
            "order_items": records.get("shop.order_items", []),
        },
        "events_summary": _events_summary(records),
        "purposes": _purposes(warehouse["consent_status"]),
        "requests": {
            "tracking": warehouse["requests"],
            "records": records.get("privacy.subject_requests", []),
        },
        "raw_records": records,
    }
    return AccessExport(request_id=request_id, person_key=person_key, data=data)


def render_summary(data: Mapping[str, Any]) -> str:
    """A readable summary of an export, for the letter to the subject."""
    lines = [
        f"Subject access export {data.get('request_id') or ''}".rstrip(),
        f"generated {_encode(data.get('generated_at'))} UTC",
        "",
        "Identifiers held:",
    ]
    lines += [f"  {i['type']}: {i['value']}" for i in data.get("identifiers", [])] or ["  none"]
    lines += [f"  {n['part']}: {n['value']}" for n in data.get("names", [])]
    profile = data.get("profile")
    lines += ["", "Profile: " + ("held (see profile in the JSON)" if profile else "not profiled")]
    lines += ["", "Consents:"]
    for c in data.get("consents", {}).get("status", []):
        state = "in force" if c.get("is_permitted") else "not in force"
        lines.append(f"  {c['purpose_code']}: {state} (evidence {c.get('evidence_ref') or '-'})")
    orders = data.get("orders", {})
    lines += [
        "",
        f"Orders: {len(orders.get('orders', []))} order versions, "
        f"{len(orders.get('order_items', []))} lines",
    ]
    summary = data.get("events_summary", {})
    lines.append(
        f"Site events: {sum(e['count'] for e in summary.get('site_events', []))}; "
        f"messages: {sum(e['count'] for e in summary.get('messages', []))}"
    )
    lines += ["", "Purposes, recipients and retention:"]
    for p in data.get("purposes", []):
        recipients = ", ".join(p["recipients"])
        lines.append(f"  {p['purpose_name']} ({p['legal_basis']}): recipients {recipients}")
        for c in p["data_categories"]:
            lines.append(
                f"    {c['data_category']}: kept {c['retention_days']} days from {c['retention_from']}"
            )
    lines += ["", "Requests:"]
    for r in data.get("requests", {}).get("tracking", []):
        lines.append(
            f"  {r['request_id']} {r['request_type']} received {_encode(r['received_at'])}, "
            f"due {_encode(r['due_date'])}, {r['request_status']}"
        )
    raw = data.get("raw_records", {})
    lines += [
        "",
        "Rows held in the landing zone: " + ", ".join(f"{t} {len(v)}" for t, v in raw.items()),
    ]
    return "\n".join(lines) + "\n"


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(path, 0o600)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cdp.access",
        description=(
            "Subject access and portability export for the privacy officer: everything held on "
            "the person an identifier belongs to, as JSON and a readable summary. Logged to the "
            "vault's re-identification log before anything is written."
        ),
        epilog="exit status: 0 exported, 3 no such person, 1 error, 2 usage error",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("export", help="export everything held on one person")
    ex.add_argument("--id-type", required=True, choices=sorted(normalise.IDENTIFIER_NORMALISERS))
    ex.add_argument(
        "--value",
        required=True,
        help="the identifier as given by the subject; '-' reads it from standard input",
    )
    ex.add_argument("--officer", required=True, help="your name (logged)")
    ex.add_argument("--reason", required=True, help="why (logged; no identifier in it)")
    ex.add_argument("--request-id", default=None, help="the subject request this answers")
    ex.add_argument("--out", required=True, type=Path, help="the JSON file to write (owner-only)")
    ex.add_argument("--summary", type=Path, default=None, help="also write the summary here")
    for name in ("raw-db", "warehouse-db", "vault-db"):
        ex.add_argument(f"--{name}", type=Path, default=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.umask(OWNER_ONLY_UMASK)  # owner-only: whatever this command or DuckDB creates
    args = _parser().parse_args(argv)
    value = sys.stdin.readline().rstrip("\n") if args.value == "-" else args.value
    try:
        result = export(
            id_type=args.id_type,
            value=value,
            officer=args.officer,
            reason=args.reason,
            request_id=args.request_id,
            raw_db=args.raw_db,
            warehouse_db=args.warehouse_db,
            vault_db=args.vault_db,
        )
    except AccessError as exc:
        print(f"access: error: {exc}", file=sys.stderr)
        return 3 if "holds no person" in str(exc) else 1
    _write_private(args.out, result.to_json() + "\n")
    summary = result.summary()
    if args.summary is not None:
        _write_private(args.summary, summary)
    print(summary, end="")
    print(f"JSON written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
