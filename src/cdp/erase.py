"""``cdp erase``: execute verified erasure requests end to end, down to the bytes.

One command, in this order (decision 47):

1. **refresh**: ``dbt run`` (all three stages), so the warehouse knows every
   request that has landed and whose identifiers belong to whom;
2. **purge**: :func:`cdp.purge.purge` destroys the erased persons' raw rows
   (identifier columns and free text: a device that typed the person's email is
   the person's), deletes their vault entries, replaces the identifier of their
   requests with the erasure's request id, and writes the destruction records
   and erasure proofs (retention runs too: the purge is one tool);
3. **rewrite** the raw zone and the vault (:func:`cdp.destroy.rewrite_database`):
   new files with live rows only, swapped in atomically, the old ones
   overwritten with zeros; in a demo, the generator's synthetic ground truth
   forgets the person too (:func:`forget_in_ground_truth`);
4. **rebuild** with ``dbt run --full-refresh`` (every model, the identity graph
   and the vault included, forgets the person), then ``dbt test``, recorded in
   the evidence record like any build;
5. **rewrite** the warehouse and the vault again (the rebuild freed the blocks
   that held the person's pseudonyms);
6. **releases**: every published release made before the erasure is shredded
   (:func:`cdp.publish.withdraw`) and a new one is published if the release
   gate allows it (decision 45: a release waits until ``k`` people changed, so
   that no diff isolates the erased person); until then BI has no release.

The command stops at the first step that fails and says what to do; running
it again finishes the job: the purge erases again any identifier whose proof
is recorded (re-delivered data too), and the ground truth and releases are
judged by the proofs, not by that run's requests. ``--check TYPE VALUE``
answers "was this identifier erased, and when" from the erasure proofs; it
needs ``--officer`` and ``--reason`` and is logged in the vault's
re-identification log without the identifier's pseudonym.

    cdp erase                      # execute every verified erasure request
    cdp erase --dry-run            # what the purge would destroy; writes nothing
    cdp erase --as-of 2026-11-01   # purge, rebuild and test as of that moment (default: now)
    cdp erase --check email someone@example.org --officer "A. Officer" --reason DSR-123
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from cdp import destroy, keys, paths, publish, purge, stages, vault
from cdp.as_of import AsOfError, parse_as_of
from cdp.keys import OWNER_ONLY_UMASK


class EraseError(RuntimeError):
    """A step failed; the message says which, what was done, and what to do."""


@dataclass
class ErasureReport:
    requests: list[str] = field(default_factory=list)
    rows_deleted: int = 0
    rows_depersonalised: int = 0
    proofs: int = 0
    rewritten: list[destroy.Rewritten] = field(default_factory=list)
    releases_destroyed: int = 0
    published: bool = False
    tests_passed: bool = True


def _say(message: str) -> None:
    print(f"cdp erase: {message}", flush=True)


def _dbt(args: Sequence[str], master: keys.MasterKey) -> bool:
    started = time.monotonic()
    with keys.holding(master):
        outcome = stages.run(args)
    state = "ok" if outcome.success else "FAILED"
    _say(f"dbt {' '.join(args)}: {state} in {time.monotonic() - started:.1f} s")
    if not outcome.success and outcome.messages:
        for line in outcome.messages[-5:]:
            _say(f"  {line}")
    return outcome.success


def _rewrite(report: ErasureReport, files: Sequence[Path]) -> None:
    for path in files:
        try:
            done = destroy.rewrite_database(path)
        except destroy.DestroyError as exc:
            raise EraseError(f"{exc}; run `cdp erase` again when nothing holds the file") from None
        if done is not None:
            report.rewritten.append(done)
            _say(
                f"rewrote {path.name}: {done.tables} tables, {done.rows} live rows, "
                f"{done.bytes_before} -> {done.bytes_after} bytes; the old file overwritten"
            )


def erase(
    *,
    master: keys.MasterKey,
    as_of: str | None = None,
    operator: str | None = None,
    publish_release: bool = True,
) -> ErasureReport:
    """Steps 1-6 of the module doc; raises :class:`EraseError` at the first failing step."""
    try:  # checked before anything runs: a bad --as-of changes nothing
        fixed = None if as_of is None else parse_as_of(as_of)
    except AsOfError as exc:
        raise EraseError(str(exc)) from None
    report = ErasureReport()
    raw, warehouse, vault = paths.raw_db(), paths.warehouse_db(), paths.vault_db()
    # Every dbt run of the erasure is judged at the purge's moment (unset: each run's start).
    judged = [] if fixed is None else ["--vars", json.dumps({"as_of": fixed.isoformat(sep=" ")})]
    _say("1/6 refreshing the warehouse (dbt run) so it knows every landed request")
    if not _dbt(["run", *judged], master):
        raise EraseError(
            "the warehouse could not be refreshed; nothing was destroyed. Fix the build "
            "(`cdp build`) and run `cdp erase` again"
        )
    _say("2/6 purging the raw zone and the vault")
    try:
        result = purge.purge(
            raw_db=raw,
            warehouse_db=warehouse,
            vault_db=vault,
            as_of=parse_as_of(None) if fixed is None else fixed,  # None: now, after step 1
            operator=operator,
            master=master,
        )
    except purge.PurgeError as exc:
        raise EraseError(f"the purge failed and destroyed nothing: {exc}") from None
    erasures = [r for r in result.records if r.reason == purge.ERASURE_REASON]
    report.requests = sorted({r.request_id for r in erasures if r.request_id})
    report.rows_deleted = result.rows("delete_rows")
    report.rows_depersonalised = result.rows() - report.rows_deleted
    _say(
        f"purged: {report.rows_deleted} rows deleted, {report.rows_depersonalised} "
        f"depersonalised; erasure requests executed: {', '.join(report.requests) or 'none'}"
    )
    _say("3/6 rewriting the raw zone and the vault (no freed block survives)")
    _rewrite(report, (raw, vault))
    truth = paths.truth_file()
    proofs = erased_proofs(raw)
    if truth.exists() and proofs:
        # By proof, not by this run's requests: a rerun after an interrupted one finishes it.
        forgotten = forget_in_ground_truth(truth, proofs, keys.erasure_proof_key(master))
        if forgotten:
            _say(
                f"the synthetic ground truth {truth.name}: {forgotten} generated person(s) forgotten"
            )
            _rewrite(report, (truth,))
    _say("4/6 rebuilding every model from the purged raw zone (dbt run --full-refresh)")
    if not _dbt(["run", "--full-refresh", *judged], master):
        raise EraseError(
            "the rebuild failed: the raw zone and the vault are purged, but the warehouse may "
            "still hold what they held. Fix the build and run `cdp erase` again"
        )
    tested_at = time.time()
    report.tests_passed = _dbt(["test", *judged], master)
    from cdp import cli

    cli.record_evidence(tested_at)  # the rebuild's tests, in the evidence record like any build
    _say("5/6 rewriting the warehouse and the vault")
    _rewrite(report, (warehouse, vault))
    latest = latest_erasure(raw)
    if report.requests or (latest is not None and publish.released_before(latest)):
        _say("6/6 destroying every release published before the erasure")
        report.releases_destroyed = publish.withdraw()
        _say(f"destroyed {report.releases_destroyed} published release(s)")
        if publish_release:
            report.published = publish.publish_checked()
            if not report.published:
                _say(
                    "no release is published until one passes the release gate and the audit "
                    "(a release right after an erasure would single the person out); "
                    "`cdp publish` after the next builds"
                )
    else:
        _say("6/6 no erasure executed: the published releases stay")
    return report


def erased_proofs(raw: Path) -> set[str]:
    """Every erasure proof in the raw zone (``audit.erasure_proofs``)."""
    return {str(r[0]) for r in _proof_rows(raw, "select proof from audit.erasure_proofs")}


def latest_erasure(raw: Path) -> dt.datetime | None:
    """When the latest erasure recorded in the raw zone happened (naive UTC), or None."""
    rows = _proof_rows(raw, "select max(erased_at) from audit.erasure_proofs")
    value = rows[0][0] if rows else None
    return value if isinstance(value, dt.datetime) else None


def _proof_rows(raw: Path, sql: str) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(raw), read_only=True)
    try:
        present = con.execute(
            "select count(*) from information_schema.tables "
            "where table_schema = 'audit' and table_name = 'erasure_proofs'"
        ).fetchall()
        return [tuple(r) for r in con.execute(sql).fetchall()] if present[0][0] else []
    finally:
        con.close()


def forget_in_ground_truth(truth: Path, proofs: Collection[str], proof_key: bytes) -> int:
    """Delete the erased persons from the generator's ground truth (demo data only); how many.

    ``cdp demo`` keeps the synthetic generator's answer key (``CDP_TRUTH_DB``) in the data
    folder. A real deployment has none; in a demo it is one more file that would still name
    the person, so every generated person with an identifier whose erasure proof is
    recorded is deleted from every table of it (and the shared identifiers with a proof).
    """
    con = duckdb.connect(str(truth))
    try:
        tables = con.execute(
            "select table_name from information_schema.columns "
            "where table_schema = 'main' and column_name = 'person_id' order by all"
        ).fetchall()
        people: set[str] = set()
        for person_id, id_type, value in con.execute(
            "select person_id, id_type, value from main.identifiers"
        ).fetchall():
            if purge.erasure_proof(proof_key, str(id_type), value) in proofs:
                people.add(str(person_id))
        if people:
            con.execute("begin transaction")
            for (table,) in tables:
                con.execute(
                    f'delete from main."{table}" where person_id in (select unnest(?))',
                    [sorted(people)],
                )
            con.execute("commit")
        shared = con.execute("select id_type, value from main.shared_identifiers").fetchall()
        gone = [(t, v) for t, v in shared if purge.erasure_proof(proof_key, str(t), v) in proofs]
        for id_type, value in gone:
            con.execute(
                "delete from main.shared_identifiers where id_type = ? and value = ?",
                [id_type, value],
            )
    except duckdb.CatalogException as exc:
        raise EraseError(
            f"{truth} is not the generator's ground truth ({str(exc).splitlines()[0]}); "
            "unset CDP_TRUTH_DB or remove the file"
        ) from None
    finally:
        con.close()
    return len(people)


def main(argv: Sequence[str] | None = None) -> int:
    os.umask(OWNER_ONLY_UMASK)
    parser = argparse.ArgumentParser(
        prog="cdp erase",
        description=(
            "Execute every verified erasure request end to end: refresh, purge (raw zone and "
            "vault), rewrite the database files, rebuild, rewrite again, destroy earlier "
            "releases. Needs the master key (CDP_MASTER_KEY or CDP_MASTER_KEY_FILE)."
        ),
    )
    parser.add_argument(
        "--as-of",
        metavar="ISO",
        help="purge, rebuild and test the warehouse as of this moment (default: now)",
    )
    parser.add_argument("--operator", help="who runs it, for the record (default: the OS user)")
    parser.add_argument("--officer", help="with --check: the privacy officer asking (logged)")
    parser.add_argument(
        "--reason", help="with --check: why (a request id, never an identifier; logged)"
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="what the purge would destroy, from the current warehouse; writes nothing",
    )
    parser.add_argument(
        "--no-publish",
        action="store_true",
        help="destroy earlier releases but do not publish a new one",
    )
    parser.add_argument(
        "--check",
        nargs=2,
        metavar=("TYPE", "VALUE"),
        help="was this identifier (customer_id, email, phone, ...) erased, and when",
    )
    args = parser.parse_args(argv)
    try:
        master = keys.take_master_key()
    except keys.KeyConfigError as exc:
        _say(f"error: {exc}")
        return 2
    if args.check:
        id_type, value = args.check
        try:
            request = vault._check_request(args.officer, args.reason, "erasure_check")
            proofs = purge.erasure_status(paths.raw_db(), id_type, value, master=master)
            # Accountable like every lookup with the key, without the identifier's pseudonym
            # (that would put the erased person back in the log): who, why, what type, found.
            con = duckdb.connect(str(paths.vault_db()))
            try:
                vault.append_log(
                    con,
                    request,
                    master=master,
                    id_type=id_type,
                    pseudonym_value=None,
                    rows_returned=len(proofs),
                    outcome="erased" if proofs else "not_found",
                    key_version=master.version_label,
                    tool="cdp.erase",
                )
            finally:
                con.close()
        except (purge.PurgeError, vault.VaultError, duckdb.Error) as exc:
            _say(f"error: {exc}")
            return 2
        if not proofs:
            print(f"no erasure of that {id_type} is recorded")
            return 1
        for proof in proofs:
            print(
                f"erased on {proof.erased_at:%Y-%m-%d %H:%M:%S} UTC by request "
                f"{proof.request_id or '(none)'}"
            )
        return 0
    if args.dry_run:
        try:
            result = purge.purge(
                raw_db=paths.raw_db(),
                warehouse_db=paths.warehouse_db(),
                vault_db=paths.vault_db(),
                as_of=parse_as_of(args.as_of),
                dry_run=True,
                master=master,
            )
        except (purge.PurgeError, AsOfError) as exc:
            _say(f"error: {exc}")
            return 1
        print(purge.summary(result))
        return 0
    try:
        report = erase(
            master=master,
            as_of=args.as_of,
            operator=args.operator,
            publish_release=not args.no_publish,
        )
    except (EraseError, purge.PurgeError) as exc:
        _say(f"error: {exc}")
        return 1
    _say(
        f"done: {len(report.requests)} erasure request(s) executed, "
        f"{len(report.rewritten)} database files rewritten, "
        f"{report.releases_destroyed} release(s) destroyed, "
        f"{'a new release published' if report.published else 'no release published'}"
        + ("" if report.tests_passed else "; some data tests FAILED after the rebuild (see above)")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
