"""A purge run: the plan (every rule, in order) and :func:`purge` (plan, record, execute)."""

from __future__ import annotations

import datetime as dt
import getpass
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

import duckdb

from cdp import contract, keys
from cdp.purge.categories import (
    REQUIRED_CATEGORIES,
    Category,
    Purpose,
    load_categories,
    load_purposes,
)
from cdp.purge.consent import plan_consent_records
from cdp.purge.core import LOG_TABLE, PROOF_TABLE, PurgeError, Purger, Rule, first_line
from cdp.purge.erasure import plan_erasure
from cdp.purge.inactivity import plan_inactivity
from cdp.purge.records import PurgeResult, execute, records
from cdp.purge.retention import plan_time_based
from cdp.purge.scopes import plan_scope_erasure, plan_scopes
from cdp.purge.vault_erasure import execute_vault


def plan(purger: Purger) -> None:
    """Every rule, in order: within a table an earlier rule's rows are not taken again
    (``Purger.add_rule``), so retention comes first, then consent episodes, inactivity,
    erasure, and the purge's own records. The withdrawals' scopes (:mod:`.scopes`) are
    planned before the consent rule, which counts them as closers."""
    as_of = purger.as_of
    plan_time_based(purger, as_of)
    # The withdrawals' scopes first: the consent rule counts them as closers.
    plan_scopes(purger)
    plan_consent_records(purger)
    plan_inactivity(purger)
    plan_erasure(purger)
    plan_scope_erasure(purger)
    cutoff = purger.cutoff("destruction_records")
    # The purge's own records: destruction log and erasure proofs, kept 3 years.
    for table, name, at in (
        (PROOF_TABLE, "erasure_proofs", "erased_at"),
        (LOG_TABLE, "destruction_log", "destroyed_at"),
    ):
        if purger.has_table(name):
            purger.add_rule(
                Rule(table, "destruction_records", "retention_expired", "delete_rows"),
                f"""
                select rowid, run_id, {at}, null, null
                from {table}
                where {at} < ?
                """,
                [cutoff],
            )


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
            f"({first_line(exc)}); no build or loader may hold it while the purge runs"
        ) from None
    run_id = str(uuid.uuid4())
    result = PurgeResult(run_id=run_id, as_of=as_of, dry_run=dry_run)
    try:
        problems = [p for p in contract.check_database(con) if not p.startswith("unexpected table")]
        if problems:
            raise PurgeError(
                f"the landing zone {raw_db} does not match the contract: {'; '.join(problems[:3])}"
            )
        purger = Purger(con, as_of, catalogue, purpose_list, master)
        purger.vault_db = vault_db
        purger.build_subject_keys()
        purger.attach_warehouse(warehouse_db)
        purger.check_key_matches_warehouse()
        con.execute("begin transaction")
        try:
            plan(purger)
            destroyed_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
            result.records = records(purger, run_id, destroyed_at, operator or _operator())
            if dry_run:
                con.execute("rollback")
            else:
                execute_vault(purger)
                execute(purger, result.records)
                con.execute("commit")
                con.execute("checkpoint")
        except BaseException:
            con.execute("rollback")
            raise
    except duckdb.Error as exc:
        raise PurgeError(f"the purge failed and destroyed nothing: {first_line(exc)}") from None
    finally:
        con.close()
    return result


def _operator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
