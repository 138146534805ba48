"""Erasure: the person's raw rows, identifiers proven erased before, and erasure proofs.

Verified erasure requests (``int_rights__erased_persons`` of the built warehouse) and
identifiers an earlier erasure proved (``audit.erasure_proofs``, re-delivered by a loader)
are destroyed as each table's metadata says (:mod:`cdp.sources`); free text naming the
person (:mod:`.free_text`) and their vault entries (:mod:`.vault_erasure`) go too. A proof
is keyed in a domain of its own (decision 48): :func:`erasure_proof`, :func:`erasure_status`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from cdp import keys, normalise, pseudonym, sources
from cdp.purge.core import (
    AUDIT_SCHEMA,
    ERASURE_REASON,
    PROOF_TABLE,
    PurgeError,
    Purger,
    Rule,
    identifier_columns,
)
from cdp.purge.free_text import link_free_text, text_rows
from cdp.purge.vault_erasure import plan_vault_erasure


def build_all_keys(purger: Purger) -> None:
    """purge_all_keys(id_type, raw_value, subject_key): every identifier in every raw column
    the sources' metadata names (cdp.sources)."""
    branches = [
        f"select {sql_type} as id_type, {column} as raw_value from {table.qualified}"
        for table in sources.landing_tables()
        for column, sql_type in identifier_columns(table)
    ]
    pairs = purger.sql(
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
            "subject_key": pa.array([purger.subject_key(p[0], p[1]) for p in known], pa.string()),
        }
    )
    purger.con.register("purge_all_keys_arrow", table)
    purger.sql(
        "create or replace temp table purge_all_keys as select * from purge_all_keys_arrow "
        "where subject_key is not null"
    )
    purger.con.unregister("purge_all_keys_arrow")


def plan_erasure(purger: Purger) -> None:
    """Verified erasure requests: destroy the person's raw rows, keep what the law needs.

    The person's identifiers are every identifier the warehouse's identity map gives them
    alone (int_consent__subject_persons, unambiguous links only: a shared mailbox's rows
    are not theirs to destroy). CRM records, site events, messages and consent records are
    deleted; orders stay for accounting (5 years) with their contact and delivery fields
    nulled; the person's subject requests stay as proof that they were answered (and the
    erasure request keeps excluding them from every later build), with the details of a
    rectification (a corrected name or contact) nulled. Vault entries are deleted too.
    """
    if not purger.has_erasure_model:
        return
    row = purger.sql("select count(*) from purge_erased_persons").fetchall()
    pending = bool(row and int(row[0][0]))
    proven = purger.has_table("erasure_proofs")
    if not pending and not proven:
        return
    build_all_keys(purger)
    if proven:
        find_proven_identifiers(purger)
    purger.sql(
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
        purger.sql(
            """
            insert into purge_erased_keys
            select distinct proven.subject_key, 'proof:' || proven.proof, proven.request_id
            from purge_proven as proven
            where proven.subject_key not in (select subject_key from purge_erased_keys)
            """
        )
        for person_key, proof in purger.sql(
            "select distinct 'proof:' || proof, proof from purge_proven"
        ).fetchall():
            purger.person_proofs.setdefault(str(person_key), str(proof))
    row = purger.sql("select count(*) from purge_erased_keys").fetchall()
    if not row or not int(row[0][0]):
        return
    purger.sql(
        """
        create or replace temp table purge_erased_values as
        select keys.id_type, keys.raw_value, erased.person_key, erased.request_id
        from purge_all_keys as keys
        inner join purge_erased_keys as erased
            on keys.subject_key = erased.subject_key
        """
    )

    link_free_text(purger)

    # The person's own rows in every landing table with an identifier column: what the
    # table's metadata says an erasure does to them (cdp.sources).
    for table in sources.landing_tables():
        pairs = identifier_columns(table, alias="rows.", any_channel=True)
        if not pairs:
            continue
        condition = " or ".join(
            f"({sql_type} = erased.id_type and rows.{column} = erased.raw_value)"
            for column, sql_type in pairs
        )
        purger.add_rule(
            Rule(
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
        purger.add_rule(
            Rule(
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
            inner join {text_rows(table)} as hits
                on rows._purge_row_id = hits.row_id
            qualify row_number() over (partition by rows._purge_row_id order by hits.person_key) = 1
            """,
            with_request=True,
        )
    plan_proofs(purger)
    plan_vault_erasure(purger)


def find_proven_identifiers(purger: Purger) -> None:
    """Identifiers erased before that are in the raw zone again (a loader re-delivered them).

    Every raw identifier's erasure proof is compared with ``audit.erasure_proofs``: a match
    is erased again under the original request, and so is the person the identity map now
    gives it alone (``purge_proven``, ``purge_erased_persons``).
    """
    candidates = purger.sql(
        "select distinct id_type, raw_value, subject_key from purge_all_keys"
    ).fetchall()
    proofs = [proof_of(purger, str(t), v) for t, v, _ in candidates]
    table = pa.table(
        {
            "subject_key": pa.array([c[2] for c in candidates], pa.string()),
            "proof": pa.array(proofs, pa.string()),
        }
    )
    purger.con.register("purge_candidate_proofs", table)
    purger.sql(
        f"""
        create or replace temp table purge_proven as
        select distinct candidates.subject_key, candidates.proof, min(known.request_id) as request_id
        from purge_candidate_proofs as candidates
        inner join {PROOF_TABLE} as known
            on candidates.proof = known.proof
        group by all
        """
    )
    purger.con.unregister("purge_candidate_proofs")
    purger.sql(
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
    for person_key, proof in purger.sql(
        """
        select persons.person_key, min(proven.proof)
        from purge_proven as proven
        inner join purge_subject_persons as persons
            on proven.subject_key = persons.subject_key and persons.is_unambiguous
        group by persons.person_key
        """
    ).fetchall():
        purger.person_proofs.setdefault(str(person_key), str(proof))


def plan_proofs(purger: Purger) -> None:
    """A proof per identifier erased, keyed in a domain of its own (decision 48).

    ``audit.erasure_proofs`` answers "was this identifier erased, and when" for whoever
    holds the key (``cdp erase --check``); no other value shares its key, so it links to
    no pseudonym, vault entry or person key. Destruction records name the subject by the
    proof of the identifier the erasure request gave.
    """
    erased = purger.sql(
        "select distinct id_type, raw_value, request_id from purge_erased_values order by all"
    ).fetchall()
    seen: set[tuple[str, str]] = set()
    for id_type, raw_value, request_id in erased:
        proof = proof_of(purger, id_type, raw_value)
        if proof is not None and (proof, str(request_id)) not in seen:
            seen.add((proof, str(request_id)))
            purger.proofs.append((proof, str(id_type), str(request_id)))
    for person_key, id_type, raw_value in purger.sql(
        """
        select erased.person_key, lower(trim(requests.subject_id_type)), requests.subject_id
        from purge_erased_persons as erased
        inner join privacy.subject_requests as requests
            on trim(requests.request_id) = erased.request_id
        """
    ).fetchall():
        proof = proof_of(purger, id_type, raw_value)
        if proof is not None:
            purger.person_proofs[str(person_key)] = proof


def proof_of(purger: Purger, id_type: str | None, raw_value: str | None) -> str | None:
    """The erasure proof of a raw identifier: keyed, in the erasure domain only."""
    return erasure_proof(purger.proof_key, id_type, raw_value)


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
