"""Retention purge: destroy expired personal data in the raw zone, and record it.

The warehouse never shows a row older than its data category allows (every
time-dependent model filters by retention as of ``as_of``), but the raw zone
keeps what loaders wrote until something destroys it. This is that something:
the only writer of the raw zone besides the loaders. It opens ``CDP_RAW_DB``
read-write, destroys (or depersonalises) every row past its retention window
as of ``--as-of``, and writes one destruction record per batch of destroyed
rows into ``audit.destruction_log`` in the same file, in the same transaction
(a destruction without its record, or a record without its destruction, cannot
happen). Records are kept 3 years (category ``destruction_records``) and then
destroyed by the purge itself, which records that too.

Which tables it reads, their data category, the time a row is dated by and the rule that
judges it expired, and what an erasure does to a row, come from the sources' metadata
(:mod:`cdp.sources`, decision 57): a new landing table is purged with no edit here. The
periods come from the catalogue ``seeds/data_categories.csv`` (the same file dbt loads, so
the warehouse and the purge cannot disagree about periods). For the landing zone of the
contract:

====================  ===========================  =================================================
raw table             data category                expires when
====================  ===========================  =================================================
web.events            site_activity                event time (earlier of client and server clock)
messaging.message_    communication_activity       event time; an unsubscribe or complaint is a
events                (opt-outs: consent_records)  withdrawal and is kept as proof like consent records
shop.orders,          purchase_history             order time (order lines go with their order)
shop.order_items
privacy.consent_      consent_records              the first withdrawal at or after the event (the end
events                                             of its consent episode) is older than the window;
                                                   judged per person, like the warehouse's person ledger
privacy.subject_      subject_requests             receipt; restriction and erasure requests stay
requests                                           while in effect (nothing lifts them)
crm.customers         customer_master_data         the customer's last activity (order, consent
                                                   grant, CRM record created or updated): an inactive
                                                   customer is depersonalised (CRM rows deleted,
                                                   contact and delivery fields of orders nulled,
                                                   messages to them deleted; opt-out proof is kept)
audit.destruction_    destruction_records          destruction time
log
====================  ===========================  =================================================

Erasure (a verified erasure request, ``intermediate.int_rights__erased_persons``
of the built warehouse): every raw row carrying an identifier that belongs to
the person alone is destroyed (CRM records, site events, messages, consent
records), and so is every site event whose free text (URLs, search query,
properties) names the person, with every row of a device that carried it and
never logged in as anyone else; their orders stay for accounting (5 years)
with contact and delivery fields nulled; their subject requests stay as proof
with the identifier replaced by ``erased-by:<erasure request id>`` and the
details nulled (``replace_fields``); ``audit.erasure_proofs`` gets a keyed
proof per identifier destroyed (decision 48). Their entries in the vault
(``--vault-db``) are deleted first, and their pseudonym redacted from the
re-identification log, in the vault's own transaction (the vault is derived
from the raw zone by every build, so a failure after it is repaired by running
the purge again). Each record carries the erasure's ``request_id``; the next
build marks the request closed (``int_rights__request_tracking``). ``cdp
erase`` runs the purge as one step of the whole erasure (rewriting the files
and rebuilding); run alone, the purge deletes rows, which DuckDB leaves in
freed blocks until the file is rewritten.

Consent episodes and inactivity are judged per *person*, so the purge reads
the identity map and activity of the built warehouse (``CDP_WAREHOUSE_DB``,
read-only): ``intermediate.int_consent__subject_persons`` and
``intermediate.int_consent__person_activity``. It computes each raw
identifier's pseudonym in Python with the master key (``CDP_MASTER_KEY`` /
``CDP_MASTER_KEY_FILE``, via :mod:`cdp.keys` and :mod:`cdp.pseudonym`) to join
them; the key never enters SQL. Run it after ``dbt build`` and rebuild after
it, so the warehouse reflects the destruction.

A destruction record names the data category, the source table and load
batch, the subject where the destruction is per person (the customer's
pseudonym for inactivity, the erasure proof for an erasure), the reason, the
method (``delete_rows``, ``null_fields`` or ``replace_fields`` with the
fields), when, how many rows, the oldest and newest record time, the
retention period and its legal reference, who ran it, and until when the
record is kept (RKN Order 179 asks for subject, categories, reason, method,
date). Usage::

    python scripts/purge.py --dry-run            # what would be destroyed; writes nothing
    python scripts/purge.py --as-of 2026-11-01   # destroy and record
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import getpass
import json
import os
import re
import sys
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import duckdb
import pyarrow as pa

from cdp import contract, keys, normalise, paths, pseudonym, sources
from cdp import vault as vault_tool
from cdp.keys import OWNER_ONLY_UMASK

TOOL: Final = "cdp.purge 1.0"
AUDIT_SCHEMA: Final = "audit"
LOG_TABLE: Final = f"{AUDIT_SCHEMA}.destruction_log"


# Message event types that are a subject's opt-out (kept as consent records).
OPT_OUT_EVENT_TYPES: Final = ("unsubscribed", "complained")
# Messaging channel -> identifier type of the recipient (macros/staging/recipient_type.sql).
RECIPIENT_TYPES: Final[dict[str, str]] = {
    "email": "email",
    "sms": "phone",
    "messenger": "phone",
    "push": "push_token",
}
SUBJECT_ID_TYPES: Final = ("customer_id", "email", "phone", "anonymous_id")
MIN_KEY_MATCH: Final = 0.5
# Retention rules planned apart (they judge a person across tables), and their one table.
NAMED_RULE_TABLES: Final = {
    "consent_log": "privacy.consent_events",
    "inactivity": "crm.customers",
}

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
ERASURE_REASON: Final = "erasure_request"
# What an executed erasure leaves in the subject's request rows instead of their identifier:
# the erasure request's id, so tracking can tell those requests were answered by erasure.
ERASED_SUBJECT_PREFIX: Final = "erased-by:"
PROOF_TABLE: Final = f"{AUDIT_SCHEMA}.erasure_proofs"
PROOF_COLUMNS: Final[tuple[tuple[str, str], ...]] = (
    ("proof", "VARCHAR NOT NULL"),
    ("identifier_type", "VARCHAR NOT NULL"),
    ("request_id", "VARCHAR"),
    ("run_id", "VARCHAR NOT NULL"),
    ("erased_at", "TIMESTAMP NOT NULL"),
    ("keep_until", "TIMESTAMP NOT NULL"),
)
# Identifier types matched inside free text as whole tokens (emails and phones are extracted
# and normalised instead: normalise.identifiers_in_text).
TOKEN_TYPES: Final = ("customer_id", "anonymous_id", "loyalty_card", "push_token")
MIN_TOKEN_LENGTH: Final = 6
# Vault tables and the column holding the pseudonym their rows are keyed by.
VAULT_TABLES: Final[tuple[tuple[str, str, str], ...]] = (
    ("vault_identifiers", "pseudonym", "contact_identifiers"),
    ("vault_customer_names", "customer_key", "customer_master_data"),
)


class PurgeError(Exception):
    """A problem that stops the purge before anything is destroyed; the message says what to do."""


# --------------------------------------------------------------------------- catalogue


@dataclass(frozen=True)
class Category:
    data_category: str
    retention_days: int
    retention_anchor: str
    legal_reference: str


@dataclass(frozen=True)
class Purpose:
    purpose_code: str
    legal_basis: str
    message_channels: tuple[str, ...]


def load_categories(path: Path | None = None) -> dict[str, Category]:
    """The retention catalogue (``seeds/data_categories.csv``)."""
    source = path or paths.project_dir() / "seeds" / "data_categories.csv"
    try:
        with source.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        return {
            row["data_category"]: Category(
                data_category=row["data_category"],
                retention_days=int(row["retention_days"]),
                retention_anchor=row["retention_anchor"],
                legal_reference=row["legal_reference"],
            )
            for row in rows
        }
    except (OSError, KeyError, ValueError) as exc:
        raise PurgeError(f"cannot read the retention catalogue {source}: {exc}") from None


def load_purposes(path: Path | None = None) -> list[Purpose]:
    """The purposes catalogue (``seeds/purposes.csv``)."""
    source = path or paths.project_dir() / "seeds" / "purposes.csv"
    try:
        with source.open(newline="", encoding="utf-8") as handle:
            return [
                Purpose(
                    purpose_code=row["purpose_code"],
                    legal_basis=row["legal_basis"],
                    message_channels=tuple(
                        c.strip()
                        for c in (row.get("message_channels") or "").split(";")
                        if c.strip()
                    ),
                )
                for row in csv.DictReader(handle)
            ]
    except (OSError, KeyError) as exc:
        raise PurgeError(f"cannot read the purposes catalogue {source}: {exc}") from None


REQUIRED_CATEGORIES: Final = (
    "site_activity",
    "communication_activity",
    "purchase_history",
    "consent_records",
    "subject_requests",
    "customer_master_data",
    "destruction_records",
)


# --------------------------------------------------------------------------- as_of

_AS_OF = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?(Z|[+-]\d{2}:?\d{2})?)?"
)


def parse_as_of(text: str | None, now: dt.datetime | None = None) -> dt.datetime:
    """An ISO 8601 date or timestamp as a naive UTC datetime (None: now), as the dbt macro as_of()."""
    if text is None:
        moment = now or dt.datetime.now(dt.UTC)
        return moment.astimezone(dt.UTC).replace(tzinfo=None) if moment.tzinfo else moment
    hint = (
        "--as-of must be an ISO 8601 date or UTC timestamp, e.g. 2026-11-01 or "
        "2026-11-01T09:30:00Z (an offset such as +03:00 is converted to UTC)"
    )
    found = _AS_OF.fullmatch(text.strip())
    if found is None:
        raise PurgeError(f"{hint}; got {text[:40]!r}")
    year, month, day, hour, minute, second, fraction, offset = found.groups()
    try:
        moment = dt.datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0").ljust(6, "0")),
        )
    except ValueError as exc:
        raise PurgeError(f"{hint}; got {text[:40]!r} ({exc})") from None
    if not 1900 <= moment.year <= 2999:
        raise PurgeError(f"{hint}; got {text[:40]!r} (year out of range)")
    if offset and offset != "Z":
        digits = offset[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:])
        if hours > 14 or minutes > 59:
            raise PurgeError(f"{hint}; got {text[:40]!r} (the UTC offset is out of range)")
        shift = dt.timedelta(hours=hours, minutes=minutes)
        moment = moment - shift if offset[0] == "+" else moment + shift
    return moment


# --------------------------------------------------------------------------- results


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
        return sum(r.row_count for r in self.records if method is None or r.method == method)

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


# --------------------------------------------------------------------------- the purge


@dataclass(frozen=True)
class _Rule:
    """One kind of destruction: which rows of a table (a temp table of rowids), why and how."""

    source_table: str
    data_category: str
    reason: str
    method: str
    fields: tuple[str, ...] = ()


def _identifier_columns(
    table: sources.Table, alias: str = "", *, any_channel: bool = False
) -> list[tuple[str, str]]:
    """(column, SQL giving its identifier type) of every identifier column of ``table``.

    A column of a fixed type gives the type; a column typed by another column of its row
    gives that column, cleaned; a recipient gives its channel's recipient type, or with
    ``any_channel`` one pair per recipient type (a message to the person's address is theirs
    whatever channel the loader wrote).
    """
    pairs = [(column, f"'{id_type}'") for column, id_type in table.identifier_columns]
    pairs += [
        (column, f"lower(trim({alias}{type_column}))")
        for column, type_column in table.typed_columns
    ]
    for column, channel in table.channel_columns:
        if any_channel:
            pairs += [(column, f"'{t}'") for t in sorted(set(RECIPIENT_TYPES.values()))]
        else:
            cases = " ".join(f"when '{c}' then '{t}'" for c, t in RECIPIENT_TYPES.items())
            pairs.append((column, f"case lower(trim({alias}{channel})) {cases} end"))
    return pairs


def _text_rows(table: sources.Table) -> str:
    """The temp table of ``table``'s rows whose free text names an erased person."""
    return f"purge_text_{table.schema}_{table.name}"


def _device_column(table: sources.Table) -> str | None:
    """The column of a device id (anonymous_id) in ``table``, if it has one."""
    for column, id_type in table.identifier_columns:
        if id_type == "anonymous_id":
            return column
    return None


def _quote_list(values: Iterable[str]) -> str:
    """A SQL list of string literals from trusted constants (never user input)."""
    items = list(values)
    for value in items:
        if not re.fullmatch(r"[a-z_]+", value):
            raise ValueError(f"not a plain code: {value!r}")
    return ", ".join(f"'{v}'" for v in items) or "null"


class _Purger:
    def __init__(
        self,
        con: Any,
        as_of: dt.datetime,
        categories: Mapping[str, Category],
        purposes: Sequence[Purpose],
        master: keys.MasterKey,
    ) -> None:
        self.con = con
        self.as_of = as_of
        self.categories = categories
        self.purposes = purposes
        self.identity_key = keys.pseudonym_key(master, "identity")
        self.version = master.version
        self.rules: list[tuple[_Rule, str]] = []
        # (vault table, key column, data category, person_key, request_id, rows) to delete.
        self.vault_plan: list[tuple[str, str, str, str, str, int]] = []
        self.vault_db: Path | None = None
        self.has_erasure_model = False
        self.proof_key = keys.erasure_proof_key(master)
        # person_key -> the proof of the identifier their erasure request named
        self.person_proofs: dict[str, str] = {}
        # (proof, identifier type, request_id) of every identifier an erasure destroys
        self.proofs: list[tuple[str, str, str]] = []

    def cutoff(self, category: str) -> dt.datetime:
        return self.as_of - dt.timedelta(days=self.categories[category].retention_days)

    def sql(self, statement: str, params: Sequence[object] = ()) -> Any:
        return self.con.execute(statement, list(params))

    # ---- identifiers

    def subject_key(self, id_type: str | None, value: str | None) -> str | None:
        if id_type is None or value is None:
            return None
        try:
            normalised = normalise.normalise_identifier(id_type, value)
        except ValueError:
            return None
        return pseudonym.pseudonym(self.identity_key, self.version, id_type, normalised)

    def build_subject_keys(self) -> None:
        """purge_keys(id_type, raw_value, subject_key): every raw identifier the rules need."""
        pairs = self.sql(
            f"""
            select distinct id_type, raw_value from (
                select lower(trim(subject_id_type)) as id_type, subject_id as raw_value
                from privacy.consent_events
                union all
                select lower(trim(subject_id_type)), subject_id from privacy.subject_requests
                union all
                select 'customer_id', customer_id from messaging.message_events
                union all
                select case lower(trim(channel))
                        {" ".join(f"when '{c}' then '{t}'" for c, t in RECIPIENT_TYPES.items())}
                    end, recipient
                from messaging.message_events
                where lower(trim(event_type)) in ({_quote_list(OPT_OUT_EVENT_TYPES)})
                union all
                select 'customer_id', customer_id from crm.customers
            ) as identifiers
            where id_type in ({_quote_list((*SUBJECT_ID_TYPES, "push_token"))}) and raw_value is not null
            """
        ).fetchall()
        table = pa.table(
            {
                "id_type": pa.array([p[0] for p in pairs], pa.string()),
                "raw_value": pa.array([p[1] for p in pairs], pa.string()),
                "subject_key": pa.array([self.subject_key(p[0], p[1]) for p in pairs], pa.string()),
            }
        )
        self.con.register("purge_keys_arrow", table)
        self.sql("create or replace temp table purge_keys as select * from purge_keys_arrow")
        self.con.unregister("purge_keys_arrow")

    def attach_warehouse(self, warehouse_db: Path) -> None:
        if not warehouse_db.exists():
            raise PurgeError(
                f"no warehouse at {warehouse_db}: run `dbt build` first (the purge judges consent "
                "episodes and inactivity per person, from the warehouse's identity map and activity), "
                "or point CDP_WAREHOUSE_DB / --warehouse-db at it"
            )
        try:
            self.sql(f"attach '{_sql_path(warehouse_db)}' as purge_wh (read_only)")
        except duckdb.Error as exc:
            raise PurgeError(
                f"cannot open the warehouse {warehouse_db} read-only ({_first_line(exc)}); "
                "if a build is running, wait for it to finish"
            ) from None
        needed = ("int_consent__subject_persons", "int_consent__person_activity")
        found = {
            row[0]
            for row in self.sql(
                "select table_name from information_schema.tables "
                "where table_catalog = 'purge_wh' and table_schema = 'intermediate'"
            ).fetchall()
        }
        missing = [name for name in needed if name not in found]
        if missing:
            raise PurgeError(
                f"the warehouse {warehouse_db} has no intermediate.{', intermediate.'.join(missing)}: "
                "run `dbt build` first"
            )
        self.sql(
            """
            create or replace temp table purge_subject_persons as
            select subject_key, person_key, is_unambiguous
            from purge_wh.intermediate.int_consent__subject_persons
            """
        )
        self.sql(
            """
            create or replace temp table purge_person_activity as
            select person_key, last_activity_at
            from purge_wh.intermediate.int_consent__person_activity
            """
        )
        # Verified erasure requests (int_rights__erased_persons); a warehouse built before
        # the rights models existed has none to execute.
        self.has_erasure_model = "int_rights__erased_persons" in found
        if self.has_erasure_model:
            self.sql(
                """
                create or replace temp table purge_erased_persons as
                select person_key, min(request_id) as request_id
                from purge_wh.intermediate.int_rights__erased_persons
                group by person_key
                """
            )

    def check_key_matches_warehouse(self) -> None:
        """The warehouse must have been built with this key from this landing zone."""
        row = self.sql(
            """
            select
                count(distinct keys.subject_key),
                count(distinct persons.subject_key)
            from purge_keys as keys
            left join purge_subject_persons as persons
                on keys.subject_key = persons.subject_key
            where keys.id_type = 'customer_id'
            """
        ).fetchone()
        total, matched = int(row[0]), int(row[1])
        if total >= 10 and matched < MIN_KEY_MATCH * total:
            raise PurgeError(
                f"only {matched} of {total} customer ids of the landing zone are known to the "
                "warehouse: it was built with another master key or from another landing zone; "
                "build it with this key and landing zone first"
            )

    # ---- rules

    def add_rule(
        self,
        rule: _Rule,
        select_sql: str,
        params: Sequence[object] = (),
        *,
        with_request: bool = False,
    ) -> None:
        """Register rows to destroy: ``select_sql`` yields (rowid, _batch_id, record_at,
        subject_id_type, subject_key[, request_id]); rows an earlier rule of the table took
        are skipped."""
        name = f"purge_rule_{len(self.rules)}"
        earlier = [n for r, n in self.rules if r.source_table == rule.source_table]
        exclusion = "".join(
            f" and candidates.row_id not in (select row_id from {n})" for n in earlier
        )
        columns = "row_id, _batch_id, record_at, subject_id_type, subject_key"
        if with_request:
            columns += ", request_id"
        extra = "" if with_request else ", cast(null as varchar) as request_id"
        self.sql(
            f"""
            create or replace temp table {name} as
            select *{extra} from ({select_sql}) as candidates ({columns})
            where true{exclusion}
            """,
            params,
        )
        self.rules.append((rule, name))

    def plan(self) -> None:
        as_of = self.as_of
        self.plan_time_based(as_of)
        self.plan_consent_records()
        self.plan_inactivity()
        self.plan_erasure()
        cutoff = self.cutoff("destruction_records")
        # The purge's own records: destruction log and erasure proofs, kept 3 years.
        for table, name, at in (
            (PROOF_TABLE, "erasure_proofs", "erased_at"),
            (LOG_TABLE, "destruction_log", "destroyed_at"),
        ):
            if self.has_table(name):
                self.add_rule(
                    _Rule(table, "destruction_records", "retention_expired", "delete_rows"),
                    f"""
                    select rowid, run_id, {at}, null, null
                    from {table}
                    where {at} < ?
                    """,
                    [cutoff],
                )

    def has_table(self, name: str) -> bool:
        row = self.sql(
            "select count(*) from information_schema.tables "
            "where table_catalog = current_database() and table_schema = ? and table_name = ?",
            [AUDIT_SCHEMA, name],
        ).fetchone()
        return bool(row[0])

    def plan_time_based(self, as_of: dt.datetime) -> None:
        """Each landing table's retention rule, as its sources' metadata names it (cdp.sources):
        ``record_time`` for any table the metadata dates; the named rules of the tables whose
        expiry depends on more than one row (consent_log and inactivity are planned apart)."""
        for table in sources.landing_tables():
            rule = table.retention_rule
            if rule == "record_time":
                self.plan_record_time(table)
            elif rule == "latest_version":
                self.plan_latest_version(table)
            elif rule == "parent":
                self.plan_parent(table)
            elif rule == "messages":
                self.plan_messages(table)
            elif rule in NAMED_RULE_TABLES:
                if table.qualified != NAMED_RULE_TABLES[rule]:
                    raise PurgeError(
                        f"{table.qualified}: the retention rule {rule!r} is written for "
                        f"{NAMED_RULE_TABLES[rule]} only; give the table a rule of its own"
                    )
            else:
                raise PurgeError(
                    f"{table.qualified}: the purge has no retention rule {rule!r} "
                    f"(cdp.sources.RETENTION_RULES: {', '.join(sources.RETENTION_RULES)})"
                )

    def plan_record_time(self, table: sources.Table) -> None:
        """A row expires ``retention_days`` after its retention time, unless it is kept."""
        keep = f"not ({table.retention_keep}) and " if table.retention_keep else ""
        self.add_rule(
            _Rule(table.qualified, table.data_category, "retention_expired", "delete_rows"),
            f"""
            select rowid, _batch_id, {table.retention_time}, null, null
            from {table.qualified}
            where {keep}{table.retention_time} < ?
            """,
            [self.cutoff(table.data_category)],
        )

    def plan_messages(self, table: sources.Table) -> None:
        """Messages expire from their time; an unsubscribe or complaint is a withdrawal: proof,
        kept like consent records from its own time."""
        opt_outs = _quote_list(OPT_OUT_EVENT_TYPES)
        self.add_rule(
            _Rule(table.qualified, table.data_category, "retention_expired", "delete_rows"),
            f"""
            select rowid, _batch_id, {table.record_time}, null, null
            from {table.qualified}
            where
                coalesce(lower(trim(event_type)), '') not in ({opt_outs})
                and {table.record_time} < ?
            """,
            [self.cutoff(table.data_category)],
        )
        self.add_rule(
            _Rule(table.qualified, "consent_records", "consent_episode_expired", "delete_rows"),
            f"""
            select rowid, _batch_id, {table.record_time}, null, null
            from {table.qualified}
            where
                lower(trim(event_type)) in ({opt_outs})
                and {table.record_time} < ?
            """,
            [self.cutoff("consent_records")],
        )

    def _version_times(self, table: sources.Table) -> str:
        """Temp table of each record's latest time (key -> time), over all its versions."""
        name = f"purge_times_{table.schema}_{table.name}"
        key = self._record_key(table)
        self.sql(
            f"""
            create or replace temp table {name} as
            select nullif(trim({key}), '') as record_key, max({table.retention_time}) as record_at
            from {table.qualified}
            group by all
            """
        )
        return name

    def _record_key(self, table: sources.Table) -> str:
        keys_ = [c.name for c in table.columns if c.raw_key]
        if not keys_:
            raise PurgeError(f"{table.qualified}: the latest_version rule needs a raw_key column")
        return keys_[0]

    def plan_latest_version(self, table: sources.Table) -> None:
        """A record with several versions expires from its latest time (an order from when it
        was placed or last changed), all its versions at once."""
        times = self._version_times(table)
        key = self._record_key(table)
        self.add_rule(
            _Rule(table.qualified, table.data_category, "retention_expired", "delete_rows"),
            f"""
            select rows.rowid, rows._batch_id, times.record_at, null, null
            from {table.qualified} as rows
            inner join {times} as times
                on nullif(trim(rows.{key}), '') is not distinct from times.record_key
            where times.record_at < ?
            """,
            [self.cutoff(table.data_category)],
        )

    def plan_parent(self, table: sources.Table) -> None:
        """Rows that belong to a row of another table (order lines) go with it; a row whose
        parent is gone expires from its own load time."""
        assert table.parent is not None  # sources.problems() requires it for this rule
        parent_name, key = table.parent
        times = self._version_times(sources.table(parent_name))
        self.add_rule(
            _Rule(table.qualified, table.data_category, "retention_expired", "delete_rows"),
            f"""
            select rows.rowid, rows._batch_id, coalesce(times.record_at, rows._loaded_at), null, null
            from {table.qualified} as rows
            left join {times} as times
                on nullif(trim(rows.{key}), '') = times.record_key
            where coalesce(times.record_at, rows._loaded_at) < ?
            """,
            [self.cutoff(table.data_category)],
        )

    def plan_consent_records(self) -> None:
        """Consent-log rows whose episode ended longer ago than the window, judged per person."""
        known = [p.purpose_code for p in self.purposes]
        objectable = [
            p.purpose_code
            for p in self.purposes
            if p.legal_basis in ("consent", "legitimate_interest")
        ]
        channel_purposes = [(c, p.purpose_code) for p in self.purposes for c in p.message_channels]
        channel_values = ", ".join(f"('{c}', '{p}')" for c, p in channel_purposes) or "(null, null)"
        for value in (*known, *[c for c, _ in channel_purposes]):
            _quote_list([value])
        self.sql(
            f"""
            create or replace temp table purge_consent_events as
            select
                events.rowid as row_id,
                events._batch_id,
                keys.subject_key,
                lower(trim(events.purpose_code)) as purpose_code,
                lower(trim(events.action)) as action,
                coalesce(least(events.captured_at, events._loaded_at), events._loaded_at) as effective_at,
                keys.subject_key is not null
                    and lower(trim(events.purpose_code)) in ({_quote_list(known)})
                    and lower(trim(events.action)) in ('grant', 'withdraw')
                    and events.captured_at is not null as is_interpretable
            from privacy.consent_events as events
            left join purge_keys as keys
                on lower(trim(events.subject_id_type)) = keys.id_type and events.subject_id = keys.raw_value
            """
        )
        # Every event that ends an episode: consent-log withdrawals, opt-out messages, objections.
        self.sql(
            f"""
            create or replace temp table purge_closers as
            select subject_key, purpose_code, effective_at
            from purge_consent_events
            where is_interpretable and action = 'withdraw'
            union all
            select keys.subject_key, channel_purposes.purpose_code, coalesce(messages.event_at, messages._loaded_at)
            from messaging.message_events as messages
            inner join (values {channel_values}) as channel_purposes (channel, purpose_code)
                on lower(trim(messages.channel)) = channel_purposes.channel
            inner join purge_keys as keys
                on
                    (keys.id_type = 'customer_id' and messages.customer_id = keys.raw_value)
                    or (
                        keys.id_type = case lower(trim(messages.channel))
                            {" ".join(f"when '{c}' then '{t}'" for c, t in RECIPIENT_TYPES.items())}
                        end
                        and messages.recipient = keys.raw_value
                    )
            where lower(trim(messages.event_type)) in ({_quote_list(OPT_OUT_EVENT_TYPES)})
            union all
            select keys.subject_key, purposes.purpose_code, coalesce(requests.received_at, requests._loaded_at)
            from privacy.subject_requests as requests
            inner join purge_keys as keys
                on lower(trim(requests.subject_id_type)) = keys.id_type and requests.subject_id = keys.raw_value
            inner join (select unnest([{_quote_list(known)}]) as purpose_code) as purposes
                on
                    purposes.purpose_code = case when coalesce(try(json_valid(requests.details)), false)
                        then lower(trim(json_extract_string(requests.details, '$.purpose_code'))) end
                    or (
                        coalesce(case when coalesce(try(json_valid(requests.details)), false)
                            then lower(trim(json_extract_string(requests.details, '$.purpose_code'))) end, '')
                            not in ({_quote_list(known)})
                        and purposes.purpose_code in ({_quote_list(objectable)})
                    )
            where lower(trim(requests.request_type)) = 'objection' and keys.subject_key is not null
            """
        )
        # Owners of an episode: the persons an identifier belongs to (all candidates for an
        # ending event, the sole owner for a grant, as the ledger does), else the identifier.
        self.sql(
            """
            create or replace temp table purge_closer_owners as
            select coalesce(persons.person_key, 'subject:' || closers.subject_key) as owner, closers.purpose_code,
                closers.effective_at
            from purge_closers as closers
            left join purge_subject_persons as persons
                on closers.subject_key = persons.subject_key
            union all
            select 'subject:' || subject_key, purpose_code, effective_at
            from purge_closers
            """
        )
        self.sql(
            """
            create or replace temp table purge_grant_owners as
            select
                events.row_id,
                coalesce(persons.person_key, 'subject:' || events.subject_key) as owner,
                events.purpose_code,
                events.effective_at
            from purge_consent_events as events
            left join purge_subject_persons as persons
                on events.subject_key = persons.subject_key and persons.is_unambiguous
            where events.is_interpretable and events.action = 'grant'
            """
        )
        cutoff = self.cutoff("consent_records")
        self.add_rule(
            _Rule(
                "privacy.consent_events",
                "consent_records",
                "consent_episode_expired",
                "delete_rows",
            ),
            """
            select events.row_id, events._batch_id, events.effective_at, null, null
            from purge_consent_events as events
            where
                events.is_interpretable
                and events.action = 'withdraw'
                and events.effective_at < ?
            union all
            select events.row_id, events._batch_id, events.effective_at, null, null
            from purge_consent_events as events
            where
                events.is_interpretable
                and events.action = 'grant'
                and not exists (
                    select 1
                    from purge_grant_owners as owners
                    where
                        owners.row_id = events.row_id
                        and not exists (
                            select 1
                            from purge_closer_owners as closers
                            where
                                closers.owner = owners.owner
                                and closers.purpose_code = owners.purpose_code
                                and closers.effective_at >= owners.effective_at
                                and closers.effective_at < ?
                        )
                )
            """,
            [cutoff, cutoff],
        )
        # Rows staging cannot interpret (no valid subject, purpose or action) prove nothing:
        # they expire from their own time.
        self.add_rule(
            _Rule("privacy.consent_events", "consent_records", "retention_expired", "delete_rows"),
            """
            select row_id, _batch_id, effective_at, null, null
            from purge_consent_events
            where not is_interpretable and effective_at < ?
            """,
            [cutoff],
        )

    def plan_inactivity(self) -> None:
        """Customers whose last activity is older than the inactivity limit are depersonalised.

        Activity is evidence kept at least as long as the limit (an order, a consent grant, the
        CRM record created or updated), as in int_consent__person_activity: a verdict that
        changed when shorter-lived data is purged would make every run destroy more.
        """
        cutoff = self.cutoff("customer_master_data")
        # Last own activity per raw customer id: in the raw zone directly (covers what the
        # warehouse has not seen yet) and per person in the warehouse (covers linked identifiers).
        self.sql(
            """
            create or replace temp table purge_customer_activity as
            with raw_activity as (
                select nullif(trim(customer_id), '') as customer_id, created_at as activity_at
                from crm.customers
                union all
                select nullif(trim(customer_id), ''), updated_at from crm.customers
                union all
                select nullif(trim(customer_id), ''), ordered_at from shop.orders
                union all
                select nullif(trim(subject_id), ''), least(captured_at, _loaded_at) from privacy.consent_events
                where lower(trim(subject_id_type)) = 'customer_id' and lower(trim(action)) = 'grant'
            ),
            customers as (
                select distinct customers.customer_id, keys.subject_key
                from crm.customers as customers
                inner join purge_keys as keys
                    on keys.id_type = 'customer_id' and customers.customer_id = keys.raw_value
                where keys.subject_key is not null
            ),
            person_activity as (
                select persons.subject_key, max(activity.last_activity_at) as last_activity_at
                from purge_subject_persons as persons
                inner join purge_person_activity as activity
                    on persons.person_key = activity.person_key
                group by persons.subject_key
            )
            select
                customers.customer_id,
                customers.subject_key,
                greatest(
                    (select max(activity_at) from raw_activity
                     where raw_activity.customer_id = nullif(trim(customers.customer_id), '')),
                    person_activity.last_activity_at
                ) as last_activity_at
            from customers
            left join person_activity
                on customers.subject_key = person_activity.subject_key
            """
        )
        self.sql(
            """
            create or replace temp table purge_inactive_customers as
            select customer_id, subject_key, last_activity_at
            from purge_customer_activity
            where last_activity_at < ?
            """,
            [cutoff],
        )
        self.add_rule(
            _Rule("crm.customers", "customer_master_data", "inactivity_limit", "delete_rows"),
            """
            select customers.rowid, customers._batch_id, inactive.last_activity_at, 'customer_id', inactive.subject_key
            from crm.customers as customers
            inner join purge_inactive_customers as inactive
                on customers.customer_id = inactive.customer_id
            """,
        )
        self.add_rule(
            _Rule(
                "messaging.message_events",
                "communication_activity",
                "inactivity_limit",
                "delete_rows",
            ),
            f"""
            select messages.rowid, messages._batch_id, messages.event_at, 'customer_id', inactive.subject_key
            from messaging.message_events as messages
            inner join purge_inactive_customers as inactive
                on messages.customer_id = inactive.customer_id
            where coalesce(lower(trim(messages.event_type)), '') not in ({_quote_list(OPT_OUT_EVENT_TYPES)})
            """,
        )
        self.add_rule(
            _Rule(
                "shop.orders",
                "purchase_history",
                "inactivity_limit",
                "null_fields",
                sources.table("shop.orders").erasure_fields,
            ),
            """
            select orders.rowid, orders._batch_id, orders.ordered_at, 'customer_id', inactive.subject_key
            from shop.orders as orders
            inner join purge_inactive_customers as inactive
                on orders.customer_id = inactive.customer_id
            """,
        )

    # ---- erasure

    def build_all_keys(self) -> None:
        """purge_all_keys(id_type, raw_value, subject_key): every identifier in every raw column
        the sources' metadata names (cdp.sources)."""
        branches = [
            f"select {sql_type} as id_type, {column} as raw_value from {table.qualified}"
            for table in sources.landing_tables()
            for column, sql_type in _identifier_columns(table)
        ]
        pairs = self.sql(
            f"""
            select distinct id_type, raw_value from (
                {" union all ".join(branches)}
            ) as identifiers
            where id_type is not null and raw_value is not null
            """
        ).fetchall()
        known = [(t, v) for t, v in pairs if t in normalise.IDENTIFIER_NORMALISERS]
        table = pa.table(
            {
                "id_type": pa.array([p[0] for p in known], pa.string()),
                "raw_value": pa.array([p[1] for p in known], pa.string()),
                "subject_key": pa.array([self.subject_key(p[0], p[1]) for p in known], pa.string()),
            }
        )
        self.con.register("purge_all_keys_arrow", table)
        self.sql(
            "create or replace temp table purge_all_keys as select * from purge_all_keys_arrow "
            "where subject_key is not null"
        )
        self.con.unregister("purge_all_keys_arrow")

    def plan_erasure(self) -> None:
        """Verified erasure requests: destroy the person's raw rows, keep what the law needs.

        The person's identifiers are every identifier the warehouse's identity map gives them
        alone (int_consent__subject_persons, unambiguous links only: a shared mailbox's rows
        are not theirs to destroy). CRM records, site events, messages and consent records are
        deleted; orders stay for accounting (5 years) with their contact and delivery fields
        nulled; the person's subject requests stay as proof that they were answered (and the
        erasure request keeps excluding them from every later build), with the details of a
        rectification (a corrected name or contact) nulled. Vault entries are deleted too.
        """
        if not self.has_erasure_model:
            return
        row = self.sql("select count(*) from purge_erased_persons").fetchall()
        pending = bool(row and int(row[0][0]))
        proven = self.has_table("erasure_proofs")
        if not pending and not proven:
            return
        self.build_all_keys()
        if proven:
            self.find_proven_identifiers()
        self.sql(
            """
            create or replace temp table purge_erased_keys as
            select persons.subject_key, erased.person_key, erased.request_id
            from purge_subject_persons as persons
            inner join purge_erased_persons as erased
                on persons.person_key = erased.person_key
            where persons.is_unambiguous
            qualify row_number() over (partition by persons.subject_key order by erased.person_key) = 1
            """
        )
        if proven:
            # An erased identifier that came back without a person of its own (a message to
            # the address, say) is destroyed under its proof.
            self.sql(
                """
                insert into purge_erased_keys
                select distinct proven.subject_key, 'proof:' || proven.proof, proven.request_id
                from purge_proven as proven
                where proven.subject_key not in (select subject_key from purge_erased_keys)
                """
            )
            for person_key, proof in self.sql(
                "select distinct 'proof:' || proof, proof from purge_proven"
            ).fetchall():
                self.person_proofs.setdefault(str(person_key), str(proof))
        row = self.sql("select count(*) from purge_erased_keys").fetchall()
        if not row or not int(row[0][0]):
            return
        self.sql(
            """
            create or replace temp table purge_erased_values as
            select keys.id_type, keys.raw_value, erased.person_key, erased.request_id
            from purge_all_keys as keys
            inner join purge_erased_keys as erased
                on keys.subject_key = erased.subject_key
            """
        )

        self.link_free_text()

        # The person's own rows in every landing table with an identifier column: what the
        # table's metadata says an erasure does to them (cdp.sources).
        for table in sources.landing_tables():
            pairs = _identifier_columns(table, alias="rows.", any_channel=True)
            if not pairs:
                continue
            condition = " or ".join(
                f"({sql_type} = erased.id_type and rows.{column} = erased.raw_value)"
                for column, sql_type in pairs
            )
            self.add_rule(
                _Rule(
                    table.qualified,
                    table.data_category,
                    ERASURE_REASON,
                    table.erasure,
                    table.erasure_fields,
                ),
                f"""
                select rows._purge_row_id, rows._batch_id, rows._purge_record_at, 'person', erased.person_key,
                    erased.request_id
                from (
                    select rowid as _purge_row_id, {table.record_time} as _purge_record_at, *
                    from {table.qualified}
                ) as rows
                inner join purge_erased_values as erased
                    on {condition}
                qualify row_number() over (partition by rows._purge_row_id order by erased.person_key) = 1
                """,
                with_request=True,
            )
        # Other records whose free text names the person: a row of the person's device goes
        # whole, another record loses the text (or the row, as its metadata says).
        for table in sources.landing_tables():
            if not table.free_text_columns:
                continue
            self.add_rule(
                _Rule(
                    table.qualified,
                    table.data_category,
                    ERASURE_REASON,
                    table.free_text_erasure,
                    table.free_text_columns if table.free_text_erasure == "null_fields" else (),
                ),
                f"""
                select rows._purge_row_id, rows._batch_id, rows._purge_record_at, 'person', hits.person_key,
                    hits.request_id
                from (
                    select rowid as _purge_row_id, {table.record_time} as _purge_record_at, _batch_id
                    from {table.qualified}
                ) as rows
                inner join {_text_rows(table)} as hits
                    on rows._purge_row_id = hits.row_id
                qualify row_number() over (partition by rows._purge_row_id order by hits.person_key) = 1
                """,
                with_request=True,
            )
        self.plan_proofs()
        self.plan_vault_erasure()

    def find_proven_identifiers(self) -> None:
        """Identifiers erased before that are in the raw zone again (a loader re-delivered them).

        Every raw identifier's erasure proof is compared with ``audit.erasure_proofs``: a match
        is erased again under the original request, and so is the person the identity map now
        gives it alone (``purge_proven``, ``purge_erased_persons``).
        """
        candidates = self.sql(
            "select distinct id_type, raw_value, subject_key from purge_all_keys"
        ).fetchall()
        proofs = [self.proof(str(t), v) for t, v, _ in candidates]
        table = pa.table(
            {
                "subject_key": pa.array([c[2] for c in candidates], pa.string()),
                "proof": pa.array(proofs, pa.string()),
            }
        )
        self.con.register("purge_candidate_proofs", table)
        self.sql(
            f"""
            create or replace temp table purge_proven as
            select distinct candidates.subject_key, candidates.proof, min(known.request_id) as request_id
            from purge_candidate_proofs as candidates
            inner join {PROOF_TABLE} as known
                on candidates.proof = known.proof
            group by all
            """
        )
        self.con.unregister("purge_candidate_proofs")
        self.sql(
            """
            insert into purge_erased_persons
            select distinct persons.person_key, min(proven.request_id)
            from purge_proven as proven
            inner join purge_subject_persons as persons
                on proven.subject_key = persons.subject_key and persons.is_unambiguous
            where persons.person_key not in (select person_key from purge_erased_persons)
            group by persons.person_key
            """
        )
        for person_key, proof in self.sql(
            """
            select persons.person_key, min(proven.proof)
            from purge_proven as proven
            inner join purge_subject_persons as persons
                on proven.subject_key = persons.subject_key and persons.is_unambiguous
            group by persons.person_key
            """
        ).fetchall():
            self.person_proofs.setdefault(str(person_key), str(proof))

    def link_free_text(self) -> None:
        """The person's identifiers inside free text, and the devices that carried them.

        Site events whose page or referrer URL, search query or properties hold one of the
        erased person's identifiers (emails and phones found and normalised as staging finds
        them; customer ids, device ids and cards as whole tokens; the name with the surname)
        are the person's data wherever they are (``_text_rows``; every landing column the
        sources' metadata marks ``free_text``). A device that carried
        them and never logged in as anyone else is the person's device: its id joins the
        person's identifiers, so every row of it goes (``purge_erased_values``).
        """
        erased = self.sql(
            "select distinct id_type, raw_value, person_key, request_id from purge_erased_values"
        ).fetchall()
        wanted: dict[tuple[str, str], tuple[str, str]] = {}
        tokens: dict[str, tuple[str, str]] = {}
        for id_type, raw_value, person_key, request_id in erased:
            value = normalise.normalise_identifier(id_type, raw_value)
            if value is None:
                continue
            owner = (str(person_key), str(request_id))
            wanted[(id_type, value)] = owner
            if id_type in TOKEN_TYPES:
                # as normalised and as typed (a card is normalised without its dashes)
                for form in (value, str(raw_value)):
                    if len(_token_core(form)) >= MIN_TOKEN_LENGTH:
                        tokens[_token_core(form)] = owner
        names: dict[str, tuple[str, str]] = {}
        for first, last, passport, person_key, request_id in self.sql(
            """
            select distinct customers.first_name, customers.last_name, customers.passport_number,
                erased.person_key, erased.request_id
            from crm.customers as customers
            inner join purge_erased_values as erased
                on erased.id_type = 'customer_id' and customers.customer_id = erased.raw_value
            """
        ).fetchall():
            owner = (str(person_key), str(request_id))
            first_name, last_name = normalise.normalise_name(first), normalise.normalise_name(last)
            if first_name and last_name:
                for pair in (f"{first_name} {last_name}", f"{last_name} {first_name}"):
                    names[f" {pair} "] = owner
            # a passport number, in any layout
            if isinstance(passport, str) and len(_token_core(passport)) >= MIN_TOKEN_LENGTH:
                tokens[_token_core(passport)] = owner
        token_pattern = _token_pattern(tokens)

        def named_rows(name: str, table: str, columns: Sequence[str], carried: str) -> None:
            """Temp table ``name``: rows of ``table`` whose free text names an erased person."""
            texts = " union ".join(
                f"select distinct {column} as text from {table} where {column} is not null"
                for column in columns
            )
            hits: list[tuple[str, str, str]] = []
            for (text,) in self.sql(texts).fetchall():
                named = _free_text_owner(str(text), wanted, token_pattern, tokens, names)
                if named is not None:
                    hits.append((str(text), *named))
            found = pa.table(
                {
                    "text": pa.array([h[0] for h in hits], pa.string()),
                    "person_key": pa.array([h[1] for h in hits], pa.string()),
                    "request_id": pa.array([h[2] for h in hits], pa.string()),
                }
            )
            self.con.register("purge_text_hits_arrow", found)
            joins = " union ".join(
                f"select rows.rowid as row_id, {carried} as carried, hits.person_key, "
                f"hits.request_id from {table} as rows inner join purge_text_hits_arrow as hits "
                f"on rows.{column} = hits.text"
                for column in columns
            )
            self.sql(f"create or replace temp table {name} as {joins}")
            self.con.unregister("purge_text_hits_arrow")

        carriers: list[str] = []
        logins: list[str] = []
        for table in sources.landing_tables():
            device = _device_column(table)
            if table.free_text_columns:
                carried = f"rows.{device}" if device else "cast(null as varchar)"
                named_rows(_text_rows(table), table.qualified, table.free_text_columns, carried)
                if device:
                    carriers.append(_text_rows(table))
            customer = [c for c, t in table.identifier_columns if t == "customer_id"]
            if device and customer:
                logins.append(
                    f"select {device} as device, {customer[0]} as customer_id "
                    f"from {table.qualified}"
                )
        if not carriers:
            return
        # Devices that carried the person's identifiers and never logged in as anyone else.
        devices = self.sql(
            f"""
            select distinct hits.carried, hits.person_key, hits.request_id
            from ({" union all ".join(f"select * from {name}" for name in carriers)}) as hits
            where
                hits.carried is not null
                and not exists (
                    select 1
                    from ({" union all ".join(logins) or "select null as device, null as customer_id"}) as events
                    where
                        events.device = hits.carried
                        and nullif(trim(events.customer_id), '') is not null
                        and events.customer_id not in (
                            select erased.raw_value
                            from purge_erased_values as erased
                            where erased.id_type = 'customer_id' and erased.person_key = hits.person_key
                        )
                )
            """
        ).fetchall()
        if not devices:
            return
        table = pa.table(
            {
                "subject_key": pa.array(
                    [self.subject_key("anonymous_id", d[0]) for d in devices], pa.string()
                ),
                "person_key": pa.array([d[1] for d in devices], pa.string()),
                "request_id": pa.array([d[2] for d in devices], pa.string()),
            }
        )
        self.con.register("purge_devices_arrow", table)
        self.sql(
            """
            insert into purge_erased_values
            select distinct keys.id_type, keys.raw_value, devices.person_key, devices.request_id
            from purge_all_keys as keys
            inner join purge_devices_arrow as devices
                on keys.subject_key = devices.subject_key
            where not exists (
                select 1 from purge_erased_values as known
                where known.id_type = keys.id_type and known.raw_value = keys.raw_value
            )
            """
        )
        self.con.unregister("purge_devices_arrow")

    def plan_proofs(self) -> None:
        """A proof per identifier erased, keyed in a domain of its own (decision 48).

        ``audit.erasure_proofs`` answers "was this identifier erased, and when" for whoever
        holds the key (``cdp erase --check``); no other value shares its key, so it links to
        no pseudonym, vault entry or person key. Destruction records name the subject by the
        proof of the identifier the erasure request gave.
        """
        erased = self.sql(
            "select distinct id_type, raw_value, request_id from purge_erased_values order by all"
        ).fetchall()
        seen: set[tuple[str, str]] = set()
        for id_type, raw_value, request_id in erased:
            proof = self.proof(id_type, raw_value)
            if proof is not None and (proof, str(request_id)) not in seen:
                seen.add((proof, str(request_id)))
                self.proofs.append((proof, str(id_type), str(request_id)))
        for person_key, id_type, raw_value in self.sql(
            """
            select erased.person_key, lower(trim(requests.subject_id_type)), requests.subject_id
            from purge_erased_persons as erased
            inner join privacy.subject_requests as requests
                on trim(requests.request_id) = erased.request_id
            """
        ).fetchall():
            proof = self.proof(id_type, raw_value)
            if proof is not None:
                self.person_proofs[str(person_key)] = proof

    def proof(self, id_type: str | None, raw_value: str | None) -> str | None:
        """The erasure proof of a raw identifier: keyed, in the erasure domain only."""
        return erasure_proof(self.proof_key, id_type, raw_value)

    def plan_vault_erasure(self) -> None:
        """Count the erased persons' vault entries (deleted before the raw zone is written)."""
        if self.vault_db is None or not self.vault_db.exists():
            return
        erased = self.con.sql(
            "select subject_key, person_key, request_id from purge_erased_keys"
        ).to_arrow_table()
        try:
            vault = duckdb.connect(str(self.vault_db), read_only=True)
        except duckdb.Error as exc:
            raise PurgeError(
                f"cannot open the vault {self.vault_db} ({_first_line(exc)}); if a build is "
                "running, wait for it to finish"
            ) from None
        try:
            vault.register("purge_erased_keys_arrow", erased)
            present = {
                r[0]
                for r in vault.execute(
                    "select table_name from information_schema.tables where table_schema = 'main'"
                ).fetchall()
            }
            for table, column, category in VAULT_TABLES:
                if table not in present:
                    continue
                for person_key, request_id, count in vault.execute(
                    f"""
                    select erased.person_key, erased.request_id, count(*)
                    from main.{table} as entries
                    inner join purge_erased_keys_arrow as erased
                        on entries.{column} = erased.subject_key
                    group by all
                    order by all
                    """
                ).fetchall():
                    self.vault_plan.append(
                        (table, column, category, str(person_key), str(request_id), int(count))
                    )
            # The re-identification log keeps its rows (who looked up what, when) but not the
            # erased person's pseudonym; rows written before commitments existed cannot be
            # redacted without breaking the chain (decision 49).
            redactable = vault.execute(
                "select count(*) from information_schema.columns where table_schema = 'main' "
                "and table_name = ? and column_name = 'pseudonym_commitment'",
                [vault_tool.LOG_TABLE],
            ).fetchall()[0][0]
            if redactable:
                for person_key, request_id, count in vault.execute(
                    f"""
                    select erased.person_key, erased.request_id, count(*)
                    from main.{vault_tool.LOG_TABLE} as entries
                    inner join purge_erased_keys_arrow as erased
                        on entries.pseudonym = erased.subject_key
                    where entries.pseudonym_commitment is not null
                    group by all
                    order by all
                    """
                ).fetchall():
                    self.vault_plan.append(
                        (
                            vault_tool.LOG_TABLE,
                            "pseudonym",
                            "contact_identifiers",
                            str(person_key),
                            str(request_id),
                            int(count),
                        )
                    )
        finally:
            vault.close()

    def execute_vault(self) -> None:
        """Delete the erased persons' vault entries, in the vault's own transaction.

        Runs before the raw zone is written: the vault is derived from the raw zone by every
        build, so if the raw transaction then failed, the next build would re-seal what the raw
        zone still holds, and the purge can simply be run again.
        """
        if not self.vault_plan or self.vault_db is None:
            return
        erased = self.con.sql("select subject_key from purge_erased_keys").to_arrow_table()
        try:
            vault = duckdb.connect(str(self.vault_db))
        except duckdb.Error as exc:
            raise PurgeError(
                f"cannot open the vault {self.vault_db} ({_first_line(exc)})"
            ) from None
        try:
            vault.register("purge_erased_keys_arrow", erased)
            vault.execute("begin transaction")
            for table, column in sorted({(entry[0], entry[1]) for entry in self.vault_plan}):
                if table == vault_tool.LOG_TABLE:
                    subject_keys = [str(k) for k in erased.column("subject_key").to_pylist()]
                    vault_tool.redact_log(vault, subject_keys)
                    continue
                vault.execute(
                    f"delete from main.{table} where {column} in "
                    "(select subject_key from purge_erased_keys_arrow)"
                )
            vault.execute("commit")
            vault.execute("checkpoint")
        finally:
            vault.close()

    # ---- records and execution

    def records(
        self, run_id: str, destroyed_at: dt.datetime, operator: str
    ) -> list[DestructionRecord]:
        keep_until = destroyed_at + dt.timedelta(
            days=self.categories["destruction_records"].retention_days
        )
        out: list[DestructionRecord] = []
        for rule, name in self.rules:
            category = self.categories[rule.data_category]
            rows = self.sql(
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
                        self.person_proofs.get(str(subject_key)),
                    )
                out.append(
                    DestructionRecord(
                        destruction_id=str(uuid.uuid4()),
                        run_id=run_id,
                        destroyed_at=destroyed_at,
                        as_of=self.as_of,
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
        for table, _column, category_name, person_key, request_id, count in self.vault_plan:
            category = self.categories[category_name]
            out.append(
                DestructionRecord(
                    destruction_id=str(uuid.uuid4()),
                    run_id=run_id,
                    destroyed_at=destroyed_at,
                    as_of=self.as_of,
                    source_table=f"vault.{table}",
                    source_batch_id=None,
                    data_category=category_name,
                    subject_id_type="erasure_proof",
                    subject_key=self.person_proofs.get(person_key),
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

    def execute(self, records: Sequence[DestructionRecord]) -> None:
        """Destroy and record, in one transaction (the caller commits)."""
        self.sql(f"create schema if not exists {AUDIT_SCHEMA}")
        columns = ",\n    ".join(f"{name} {ctype}" for name, ctype in LOG_COLUMNS)
        self.sql(f"create table if not exists {LOG_TABLE} (\n    {columns}\n)")
        # A log written before erasure existed has no request_id column yet.
        self.sql(f"alter table {LOG_TABLE} add column if not exists request_id varchar")
        for rule, name in self.rules:
            schema_table = rule.source_table
            if rule.method == "delete_rows":
                self.sql(f"delete from {schema_table} where rowid in (select row_id from {name})")
            elif rule.method == "replace_fields":
                # An erased subject's record (a request): its first field (the identifier)
                # becomes the erasure's request id, the others are nulled.
                first, *rest = rule.fields
                nulled = "".join(f", {column} = null" for column in rest)
                self.sql(
                    f"update {schema_table} as rows set {first} = ? || erasure.request_id{nulled} "
                    f"from {name} as erasure where rows.rowid = erasure.row_id",
                    [ERASED_SUBJECT_PREFIX],
                )
            else:
                assignments = ", ".join(f"{column} = null" for column in rule.fields)
                self.sql(
                    f"update {schema_table} set {assignments} "
                    f"where rowid in (select row_id from {name})"
                )
        if self.proofs:
            self.write_proofs(records)
        if records:
            names = [name for name, _ in LOG_COLUMNS]
            table = pa.Table.from_pylist([asdict(r) for r in records]).select(names)
            self.con.register("purge_records_arrow", table)
            self.sql(
                f"insert into {LOG_TABLE} ({', '.join(names)}) "
                f"select {', '.join(names)} from purge_records_arrow"
            )
            self.con.unregister("purge_records_arrow")

    def write_proofs(self, records: Sequence[DestructionRecord]) -> None:
        """Append this run's erasure proofs to ``audit.erasure_proofs`` (kept like the records)."""
        columns = ",\n    ".join(f"{name} {ctype}" for name, ctype in PROOF_COLUMNS)
        self.sql(f"create table if not exists {PROOF_TABLE} (\n    {columns}\n)")
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        run_id = records[0].run_id if records else str(uuid.uuid4())
        erased_at = records[0].destroyed_at if records else now
        keep_until = erased_at + dt.timedelta(
            days=self.categories["destruction_records"].retention_days
        )
        table = pa.table(
            {
                "proof": pa.array([p[0] for p in self.proofs], pa.string()),
                "identifier_type": pa.array([p[1] for p in self.proofs], pa.string()),
                "request_id": pa.array([p[2] for p in self.proofs], pa.string()),
            }
        )
        self.con.register("purge_proofs_arrow", table)
        self.sql(
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
        self.con.unregister("purge_proofs_arrow")


def erasure_proof(proof_key: bytes, id_type: str | None, raw_value: str | None) -> str | None:
    """The erasure proof of a raw identifier (``erased_`` + keyed hex), or None if it is invalid."""
    if id_type not in normalise.IDENTIFIER_NORMALISERS or raw_value is None:
        return None
    value = normalise.normalise_identifier(id_type, raw_value)
    if value is None:
        return None
    return "erased_" + pseudonym.hmac_sha256_hex(
        proof_key, pseudonym.pseudonym_message(id_type, value)
    )


_TOKEN_SEPARATORS: Final = r"[\s\-_./:]*"  # noqa: S105 (a regex, not a password)


def _token_core(text: str) -> str:
    """A token as its letters and digits only (lower case): how tokens are compared."""
    return "".join(ch for ch in normalise.duckdb_lower(text) if ch.isalnum())


def _token_pattern(tokens: Mapping[str, object]) -> re.Pattern[str] | None:
    """One regex for whole tokens (not inside a longer word), in any layout of separators.

    ``LC-ERASE-889977``, ``lc erase 889977`` and ``LCERASE889977`` are one token; so
    are ``4510 778899`` and ``4510-778899``.
    """
    cores = sorted(
        {_token_core(t) for t in tokens if len(_token_core(t)) >= MIN_TOKEN_LENGTH},
        key=len,
        reverse=True,
    )
    if not cores:
        return None
    alternatives = [_TOKEN_SEPARATORS.join(re.escape(ch) for ch in core) for core in cores]
    return re.compile(r"(?<![0-9a-z])(?:" + "|".join(alternatives) + r")(?![0-9a-z])")


def _free_text_owner(
    text: str,
    wanted: Mapping[tuple[str, str], tuple[str, str]],
    token_pattern: re.Pattern[str] | None,
    tokens: Mapping[str, tuple[str, str]],
    names: Mapping[str, tuple[str, str]],
) -> tuple[str, str] | None:
    """The (person_key, request_id) of the erased person a free-text value names, or None.

    ``tokens`` is keyed by :func:`_token_core`.
    """
    forms = normalise.decoded_forms(text)
    for found in normalise.identifiers_in_forms(forms):
        if found in wanted:
            return wanted[found]
    # the whole address inside a longer word ("egift-name@host" holds "name@host")
    for (id_type, value), owner in wanted.items():
        if id_type == "email" and any(value in normalise.duckdb_lower(f) for f in forms):
            return owner
    if token_pattern is not None:
        for candidate in forms:
            match = token_pattern.search(normalise.duckdb_lower(candidate))
            if match is not None:
                return tokens[_token_core(match.group(0))]
    if names:
        for candidate in forms:
            spaced = f" {normalise.normalise_name(candidate) or ''} "
            for pair, owner in names.items():
                if pair in spaced:
                    return owner
    return None


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def purge(
    *,
    raw_db: Path,
    warehouse_db: Path,
    as_of: dt.datetime,
    vault_db: Path | None = None,
    dry_run: bool = False,
    operator: str | None = None,
    environ: Mapping[str, str] | None = None,
    categories: Mapping[str, Category] | None = None,
    purposes: Sequence[Purpose] | None = None,
    master: keys.MasterKey | None = None,
) -> PurgeResult:
    """Destroy (or, with ``dry_run``, only count) expired raw data as of ``as_of``; see the module doc."""
    catalogue = dict(categories) if categories is not None else load_categories()
    missing = [c for c in REQUIRED_CATEGORIES if c not in catalogue]
    if missing:
        raise PurgeError(f"the retention catalogue has no {', '.join(missing)}")
    purpose_list = list(purposes) if purposes is not None else load_purposes()
    if master is None:
        try:
            master = keys.load_master_key(environ)
        except keys.KeyConfigError as exc:
            raise PurgeError(str(exc)) from None
    if not raw_db.exists():
        raise PurgeError(f"no landing zone at {raw_db}: set CDP_RAW_DB or pass --raw-db")
    try:
        con = duckdb.connect(str(raw_db), read_only=dry_run)
    except duckdb.Error as exc:
        raise PurgeError(
            f"cannot open the landing zone {raw_db} {'read-only' if dry_run else 'read-write'} "
            f"({_first_line(exc)}); no build or loader may hold it while the purge runs"
        ) from None
    run_id = str(uuid.uuid4())
    result = PurgeResult(run_id=run_id, as_of=as_of, dry_run=dry_run)
    try:
        problems = [p for p in contract.check_database(con) if not p.startswith("unexpected table")]
        if problems:
            raise PurgeError(
                f"the landing zone {raw_db} does not match the contract: {'; '.join(problems[:3])}"
            )
        purger = _Purger(con, as_of, catalogue, purpose_list, master)
        purger.vault_db = vault_db
        purger.build_subject_keys()
        purger.attach_warehouse(warehouse_db)
        purger.check_key_matches_warehouse()
        con.execute("begin transaction")
        try:
            purger.plan()
            destroyed_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
            result.records = purger.records(run_id, destroyed_at, operator or _operator())
            if dry_run:
                con.execute("rollback")
            else:
                purger.execute_vault()
                purger.execute(result.records)
                con.execute("commit")
                con.execute("checkpoint")
        except BaseException:
            con.execute("rollback")
            raise
    except duckdb.Error as exc:
        raise PurgeError(f"the purge failed and destroyed nothing: {_first_line(exc)}") from None
    finally:
        con.close()
    return result


@dataclass(frozen=True)
class ErasureProof:
    identifier_type: str
    request_id: str | None
    erased_at: dt.datetime


def erasure_status(
    raw_db: Path,
    id_type: str,
    value: str,
    environ: Mapping[str, str] | None = None,
    master: keys.MasterKey | None = None,
) -> list[ErasureProof]:
    """Was this identifier erased, and when: its proofs in ``audit.erasure_proofs`` (read-only)."""
    if master is None:
        try:
            master = keys.load_master_key(environ)
        except keys.KeyConfigError as exc:
            raise PurgeError(str(exc)) from None
    if id_type not in normalise.IDENTIFIER_NORMALISERS:
        raise PurgeError(
            f"unknown identifier type {id_type[:30]!r}; known: "
            f"{', '.join(sorted(normalise.IDENTIFIER_NORMALISERS))}"
        )
    proof = erasure_proof(keys.erasure_proof_key(master), id_type, value)
    if proof is None:
        raise PurgeError(f"that is not a valid {id_type} (it does not normalise)")
    if not raw_db.exists():
        raise PurgeError(f"no landing zone at {raw_db}: set CDP_RAW_DB or pass --raw-db")
    con = duckdb.connect(str(raw_db), read_only=True)
    try:
        present = con.execute(
            "select count(*) from information_schema.tables "
            "where table_schema = ? and table_name = 'erasure_proofs'",
            [AUDIT_SCHEMA],
        ).fetchone()
        if not present or not present[0]:
            return []
        rows = con.execute(
            f"select identifier_type, request_id, erased_at from {PROOF_TABLE} "
            "where proof = ? order by erased_at",
            [proof],
        ).fetchall()
    finally:
        con.close()
    return [ErasureProof(str(r[0]), r[1], r[2]) for r in rows]


def _operator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


# --------------------------------------------------------------------------- CLI


def summary(result: PurgeResult) -> str:
    lines = [
        f"{'dry run: would destroy' if result.dry_run else 'destroyed'} as of "
        f"{result.as_of.isoformat(sep=' ')} (run {result.run_id})",
        f"{'raw table':<28}{'data category':<24}{'reason':<26}{'method':<13}{'rows':>9}",
    ]
    for (table, category, reason, method), rows in sorted(result.totals().items()):
        lines.append(f"{table:<28}{category:<24}{reason:<26}{method:<13}{rows:>9}")
    lines.append(
        f"total: {result.rows('delete_rows')} rows deleted, {result.rows('null_fields')} rows "
        f"depersonalised, {len(result.records)} destruction records"
        + ("" if result.dry_run else f" written to {LOG_TABLE}")
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    os.umask(OWNER_ONLY_UMASK)  # owner-only: whatever this command or DuckDB creates
    parser = argparse.ArgumentParser(
        prog="purge.py",
        description=(
            "Destroy personal data past its retention period (seeds/data_categories.csv) in the "
            "raw zone, and write a destruction record per batch into audit.destruction_log in the "
            "same file. Needs the master key (CDP_MASTER_KEY or CDP_MASTER_KEY_FILE) and a built "
            "warehouse (identity map and activity). Run it after `dbt build`, then build again."
        ),
    )
    parser.add_argument(
        "--as-of",
        metavar="ISO",
        help="judge retention as of this UTC date or timestamp (default: now)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="count what would be destroyed; write nothing"
    )
    parser.add_argument(
        "--raw-db",
        type=Path,
        default=None,
        help="landing zone (default: $CDP_RAW_DB or data/raw.duckdb)",
    )
    parser.add_argument(
        "--warehouse-db",
        type=Path,
        default=None,
        help="built warehouse, opened read-only (default: $CDP_WAREHOUSE_DB or data/warehouse.duckdb)",
    )
    parser.add_argument(
        "--vault-db",
        type=Path,
        default=None,
        help="the vault, where an erased person's entries are deleted (default: $CDP_VAULT_DB or data/vault.duckdb)",
    )
    parser.add_argument(
        "--operator", default=None, help="who runs the purge, for the record (default: the OS user)"
    )
    parser.add_argument(
        "--report",
        type=Path,
        default=None,
        help="also write the run's records as JSON to this file",
    )
    args = parser.parse_args(argv)
    try:
        result = purge(
            raw_db=args.raw_db or paths.raw_db(),
            warehouse_db=args.warehouse_db or paths.warehouse_db(),
            vault_db=args.vault_db or paths.vault_db(),
            as_of=parse_as_of(args.as_of),
            dry_run=args.dry_run,
            operator=args.operator,
        )
    except PurgeError as exc:
        print(f"purge: error: {exc}", file=sys.stderr)
        return 1
    print(summary(result))
    if args.report is not None:
        args.report.write_text(result.to_json() + "\n", encoding="utf-8")
        print(f"report: {args.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
