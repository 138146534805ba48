"""The planner's state: constants, the rule record, subject keys, the warehouse, ``add_rule``.

Each rule lives in a module of its own (:mod:`.retention`, :mod:`.consent`,
:mod:`.inactivity`, :mod:`.erasure` with :mod:`.free_text` and :mod:`.vault_erasure`) as
functions taking the :class:`Purger`: it holds the raw zone's connection, the catalogue, the
keys and the rules planned so far, in order (``add_rule`` skips rows an earlier rule of the
same table took, so the order of the rules within a table matters: :func:`cdp.purge.run.plan`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import duckdb
import pyarrow as pa

from cdp import catalogue, keys, normalise, pseudonym, sources

if TYPE_CHECKING:
    from cdp.purge.categories import Category, Purpose

TOOL: Final = "cdp.purge 1.0"
AUDIT_SCHEMA: Final = "audit"
LOG_TABLE: Final = f"{AUDIT_SCHEMA}.destruction_log"


# Message event types that are a subject's opt-out (kept as consent records).
OPT_OUT_EVENT_TYPES: Final = ("unsubscribed", "complained")
# Messaging channel -> identifier type of the recipient: seeds/channels.csv, as staging reads it.
RECIPIENT_TYPES: Final[dict[str, str]] = catalogue.recipient_types()
SUBJECT_ID_TYPES: Final = ("customer_id", "email", "phone", "anonymous_id")
MIN_KEY_MATCH: Final = 0.5
# Retention rules planned apart (they judge a person across tables), and their one table.
NAMED_RULE_TABLES: Final = {
    "consent_log": "privacy.consent_events",
    "inactivity": "crm.customers",
}

ERASURE_REASON: Final = "erasure_request"
# What an executed erasure leaves in the subject's request rows instead of their identifier:
# the erasure request's id, so tracking can tell those requests were answered by erasure.
ERASED_SUBJECT_PREFIX: Final = "erased-by:"
PROOF_TABLE: Final = f"{AUDIT_SCHEMA}.erasure_proofs"


class PurgeError(Exception):
    """A problem that stops the purge before anything is destroyed; the message says what to do."""


@dataclass(frozen=True)
class Rule:
    """One kind of destruction: which rows of a table (a temp table of rowids), why and how."""

    source_table: str
    data_category: str
    reason: str
    method: str
    fields: tuple[str, ...] = ()


def identifier_columns(
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


def quote_list(values: Iterable[str]) -> str:
    """A SQL list of string literals from trusted constants (never user input)."""
    items = list(values)
    for value in items:
        if not re.fullmatch(r"[a-z_]+", value):
            raise ValueError(f"not a plain code: {value!r}")
    return ", ".join(f"'{v}'" for v in items) or "null"


def sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


class Purger:
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
        self.rules: list[tuple[Rule, str]] = []
        # (vault table, key column, data category, person_key, request_id, rows) to delete.
        self.vault_plan: list[tuple[str, str, str, str, str, int]] = []
        self.vault_db: Path | None = None
        self.has_erasure_model = False
        # The warehouse's person ledger (the withdrawals whose scopes the purge keeps).
        self.has_person_events = False
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
                where lower(trim(event_type)) in ({quote_list(OPT_OUT_EVENT_TYPES)})
                union all
                select 'customer_id', customer_id from crm.customers
            ) as identifiers
            where id_type in ({quote_list((*SUBJECT_ID_TYPES, "push_token"))}) and raw_value is not null
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
            self.sql(f"attach '{sql_path(warehouse_db)}' as purge_wh (read_only)")
        except duckdb.Error as exc:
            raise PurgeError(
                f"cannot open the warehouse {warehouse_db} read-only ({first_line(exc)}); "
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
            select subject_id_type, subject_key, person_key, is_unambiguous
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
        self.has_person_events = "int_consent__person_events" in found
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
        rule: Rule,
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

    def has_temp(self, name: str) -> bool:
        rows = self.sql(
            "select count(*) from duckdb_tables() where temporary and table_name = ?", [name]
        ).fetchall()
        return bool(rows and rows[0][0])

    def has_table(self, name: str) -> bool:
        row = self.sql(
            "select count(*) from information_schema.tables "
            "where table_catalog = current_database() and table_schema = ? and table_name = ?",
            [AUDIT_SCHEMA, name],
        ).fetchone()
        return bool(row[0])
