"""Destruction records: the log and proof tables, the records of a plan, and execution.

One record per batch of rows destroyed alike; the rows are destroyed and the records
written in one transaction (the caller commits). The purge's own records expire too.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Final

import pyarrow as pa

from cdp import vault as vault_tool
from cdp.purge.core import (
    AUDIT_SCHEMA,
    ERASED_SUBJECT_PREFIX,
    ERASURE_REASON,
    LOG_TABLE,
    PROOF_TABLE,
    TOOL,
    Purger,
)
from cdp.purge.scopes import SCOPE_REASON, SCOPE_TABLE, new_scope_rows, write_scopes

LOG_COLUMNS: Final[tuple[tuple[str, str], ...]] = (
    ("destruction_id", "VARCHAR NOT NULL"),
    ("run_id", "VARCHAR NOT NULL"),
    ("destroyed_at", "TIMESTAMP NOT NULL"),
    ("as_of", "TIMESTAMP NOT NULL"),
    ("source_table", "VARCHAR NOT NULL"),
    ("source_batch_id", "VARCHAR"),
    ("data_category", "VARCHAR NOT NULL"),
    ("subject_id_type", "VARCHAR"),
    ("subject_key", "VARCHAR"),
    ("reason", "VARCHAR NOT NULL"),
    ("method", "VARCHAR NOT NULL"),
    ("fields", "VARCHAR"),
    ("row_count", "BIGINT NOT NULL"),
    ("oldest_record_at", "TIMESTAMP"),
    ("newest_record_at", "TIMESTAMP"),
    ("retention_days", "INTEGER"),
    ("legal_reference", "VARCHAR"),
    ("keep_until", "TIMESTAMP NOT NULL"),
    ("operator", "VARCHAR NOT NULL"),
    ("tool", "VARCHAR NOT NULL"),
    ("request_id", "VARCHAR"),
)
PROOF_COLUMNS: Final[tuple[tuple[str, str], ...]] = (
    ("proof", "VARCHAR NOT NULL"),
    ("identifier_type", "VARCHAR NOT NULL"),
    ("request_id", "VARCHAR"),
    ("run_id", "VARCHAR NOT NULL"),
    ("erased_at", "TIMESTAMP NOT NULL"),
    ("keep_until", "TIMESTAMP NOT NULL"),
)


@dataclass(frozen=True)
class DestructionRecord:
    """One row of ``audit.destruction_log``: one batch of rows destroyed alike."""

    destruction_id: str
    run_id: str
    destroyed_at: dt.datetime
    as_of: dt.datetime
    source_table: str
    source_batch_id: str | None
    data_category: str
    subject_id_type: str | None
    subject_key: str | None
    reason: str
    method: str
    fields: str | None
    row_count: int
    oldest_record_at: dt.datetime | None
    newest_record_at: dt.datetime | None
    retention_days: int | None
    legal_reference: str | None
    keep_until: dt.datetime
    operator: str
    tool: str
    request_id: str | None = None


@dataclass
class PurgeResult:
    run_id: str
    as_of: dt.datetime
    dry_run: bool
    records: list[DestructionRecord] = field(default_factory=list)

    def totals(self) -> dict[tuple[str, str, str, str], int]:
        """Rows per (source table, data category, reason, method)."""
        out: dict[tuple[str, str, str, str], int] = {}
        for record in self.records:
            key = (record.source_table, record.data_category, record.reason, record.method)
            out[key] = out.get(key, 0) + record.row_count
        return out

    def rows(self, method: str | None = None) -> int:
        """Rows destroyed or depersonalised (or of one ``method``); kept rows only by name."""
        return sum(
            r.row_count
            for r in self.records
            if (r.method == method) or (method is None and r.method != "keep_rows")
        )

    def to_json(self) -> str:
        def encode(value: object) -> object:
            return value.isoformat() if isinstance(value, dt.datetime) else value

        return json.dumps(
            {
                "run_id": self.run_id,
                "as_of": self.as_of.isoformat(),
                "dry_run": self.dry_run,
                "rows_deleted": self.rows("delete_rows"),
                "rows_depersonalised": self.rows("null_fields"),
                "records": [
                    {k: encode(v) for k, v in asdict(record).items()} for record in self.records
                ],
            },
            indent=2,
            ensure_ascii=False,
        )


def records(
    purger: Purger, run_id: str, destroyed_at: dt.datetime, operator: str
) -> list[DestructionRecord]:
    keep_until = destroyed_at + dt.timedelta(
        days=purger.categories["destruction_records"].retention_days
    )
    out: list[DestructionRecord] = []
    for rule, name in purger.rules:
        category = purger.categories[rule.data_category]
        rows = purger.sql(
            f"""
            select _batch_id, subject_id_type, subject_key, request_id,
                count(*), min(record_at), max(record_at)
            from {name}
            group by all
            order by all
            """
        ).fetchall()
        for batch_id, subject_type, subject_key, request_id, count, oldest, newest in rows:
            if subject_type == "person":
                # An erasure names its subject by proof, never by a key shared with data.
                subject_type, subject_key = (
                    "erasure_proof",
                    purger.person_proofs.get(str(subject_key)),
                )
            out.append(
                DestructionRecord(
                    destruction_id=str(uuid.uuid4()),
                    run_id=run_id,
                    destroyed_at=destroyed_at,
                    as_of=purger.as_of,
                    source_table=rule.source_table,
                    source_batch_id=batch_id,
                    data_category=rule.data_category,
                    subject_id_type=subject_type,
                    subject_key=subject_key,
                    reason=rule.reason,
                    method=rule.method,
                    fields=",".join(rule.fields) or None,
                    row_count=int(count),
                    oldest_record_at=oldest,
                    newest_record_at=newest,
                    retention_days=category.retention_days,
                    legal_reference=category.legal_reference,
                    keep_until=keep_until,
                    operator=operator,
                    tool=TOOL,
                    request_id=request_id,
                )
            )
    kept = new_scope_rows(purger)
    if kept:
        # Not a destruction: what the purge kept, and why (consent proof of the withdrawals
        # whose linking evidence may go now or later), with the category that dates it.
        category = purger.categories["consent_records"]
        span = purger.sql("select min(event_at), max(event_at) from purge_new_scopes").fetchall()[0]
        out.append(
            DestructionRecord(
                destruction_id=str(uuid.uuid4()),
                run_id=run_id,
                destroyed_at=destroyed_at,
                as_of=purger.as_of,
                source_table=SCOPE_TABLE,
                source_batch_id=run_id,
                data_category="consent_records",
                subject_id_type=None,
                subject_key=None,
                reason=SCOPE_REASON,
                method="keep_rows",
                fields="scope_kind,event_id,purpose_code,event_at,member_id_type,member_key",
                row_count=kept,
                oldest_record_at=span[0] if span else None,
                newest_record_at=span[1] if span else None,
                retention_days=category.retention_days,
                legal_reference=category.legal_reference,
                keep_until=keep_until,
                operator=operator,
                tool=TOOL,
            )
        )
    for table, _column, category_name, person_key, request_id, count in purger.vault_plan:
        category = purger.categories[category_name]
        out.append(
            DestructionRecord(
                destruction_id=str(uuid.uuid4()),
                run_id=run_id,
                destroyed_at=destroyed_at,
                as_of=purger.as_of,
                source_table=f"vault.{table}",
                source_batch_id=None,
                data_category=category_name,
                subject_id_type="erasure_proof",
                subject_key=purger.person_proofs.get(person_key),
                reason=ERASURE_REASON,
                method="null_fields" if table == vault_tool.LOG_TABLE else "delete_rows",
                fields="pseudonym" if table == vault_tool.LOG_TABLE else None,
                row_count=count,
                oldest_record_at=None,
                newest_record_at=None,
                retention_days=category.retention_days,
                legal_reference="GDPR art. 17(1); 152-FZ art. 21 p. 5",
                keep_until=keep_until,
                operator=operator,
                tool=TOOL,
                request_id=request_id,
            )
        )
    return out


def execute(purger: Purger, destroyed: Sequence[DestructionRecord]) -> None:
    """Destroy and record, in one transaction (the caller commits)."""
    purger.sql(f"create schema if not exists {AUDIT_SCHEMA}")
    columns = ",\n    ".join(f"{name} {ctype}" for name, ctype in LOG_COLUMNS)
    purger.sql(f"create table if not exists {LOG_TABLE} (\n    {columns}\n)")
    # A log written before erasure existed has no request_id column yet.
    purger.sql(f"alter table {LOG_TABLE} add column if not exists request_id varchar")
    # The withdrawals' scopes are kept before their linking evidence goes (same transaction).
    if any(r.method == "keep_rows" for r in destroyed):
        write_scopes(purger, destroyed[0].run_id, destroyed[0].destroyed_at)
    for rule, name in purger.rules:
        schema_table = rule.source_table
        if rule.method == "delete_rows":
            purger.sql(f"delete from {schema_table} where rowid in (select row_id from {name})")
        elif rule.method == "replace_fields":
            # An erased subject's record (a request): its first field (the identifier)
            # becomes the erasure's request id, the others are nulled.
            first, *rest = rule.fields
            nulled = "".join(f", {column} = null" for column in rest)
            purger.sql(
                f"update {schema_table} as rows set {first} = ? || erasure.request_id{nulled} "
                f"from {name} as erasure where rows.rowid = erasure.row_id",
                [ERASED_SUBJECT_PREFIX],
            )
        else:
            assignments = ", ".join(f"{column} = null" for column in rule.fields)
            purger.sql(
                f"update {schema_table} set {assignments} "
                f"where rowid in (select row_id from {name})"
            )
    if purger.proofs:
        write_proofs(purger, destroyed)
    if destroyed:
        names = [name for name, _ in LOG_COLUMNS]
        table = pa.Table.from_pylist([asdict(r) for r in destroyed]).select(names)
        purger.con.register("purge_records_arrow", table)
        purger.sql(
            f"insert into {LOG_TABLE} ({', '.join(names)}) "
            f"select {', '.join(names)} from purge_records_arrow"
        )
        purger.con.unregister("purge_records_arrow")


def write_proofs(purger: Purger, destroyed: Sequence[DestructionRecord]) -> None:
    """Append this run's erasure proofs to ``audit.erasure_proofs`` (kept like the records)."""
    columns = ",\n    ".join(f"{name} {ctype}" for name, ctype in PROOF_COLUMNS)
    purger.sql(f"create table if not exists {PROOF_TABLE} (\n    {columns}\n)")
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    run_id = destroyed[0].run_id if destroyed else str(uuid.uuid4())
    erased_at = destroyed[0].destroyed_at if destroyed else now
    keep_until = erased_at + dt.timedelta(
        days=purger.categories["destruction_records"].retention_days
    )
    table = pa.table(
        {
            "proof": pa.array([p[0] for p in purger.proofs], pa.string()),
            "identifier_type": pa.array([p[1] for p in purger.proofs], pa.string()),
            "request_id": pa.array([p[2] for p in purger.proofs], pa.string()),
        }
    )
    purger.con.register("purge_proofs_arrow", table)
    purger.sql(
        f"""
        insert into {PROOF_TABLE} (proof, identifier_type, request_id, run_id, erased_at, keep_until)
        select new.proof, new.identifier_type, new.request_id, ?, ?, ?
        from purge_proofs_arrow as new
        where not exists (
            select 1 from {PROOF_TABLE} as known
            where known.proof = new.proof and known.request_id = new.request_id
        )
        """,
        [run_id, erased_at, keep_until],
    )
    purger.con.unregister("purge_proofs_arrow")
