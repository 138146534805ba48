"""Publish the anonymised marts to ``data/published/``, atomically.

BI tools read ``marts.duckdb`` (and the Parquet files under ``parquet/``), never
the warehouse. DuckDB allows one writer *or* many readers per file, so the
published file is never written in place: a new file is built under a temporary
name in the same folder, flushed to disk (fsync) and renamed onto
``marts.duckdb`` (``os.replace``, atomic on POSIX). A reader holding the old file
open keeps reading the old inode, is never blocked and never sees a partial
state; it sees the new release when it reconnects. The Parquet files go to a new
versioned folder, and the ``parquet`` symlink is swapped the same way.

Only the tables of the warehouse schema ``bi`` (the public marts with enforced
contracts) are copied. The warehouse is attached read-only: publishing never
writes into the warehouse or the raw zone.

Before the swap, every publish runs the disclosure audit over the whole new
release (``cdp.disclosure_audit``: the interval of every suppressed number
given everything published, by linear programming) and the release gate (a
release waits until at least k people changed since the last one); either
refusal replaces nothing. A build made with a test-only weakening
(var ``disclosure_weaken``) is refused too. The gate's state lives in an
owner-only folder that no rebuild touches (decisions 43-45).

Then the Great Expectations checkpoint validates the new file (:func:`publish_checked`,
what every command that publishes runs).

    cdp publish     # also python -m cdp.publish: from CDP_WAREHOUSE_DB to CDP_PUBLISHED_DIR
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from cdp import disclosure_audit, paths
from cdp.destroy import fsync_path

PUBLISHED_SCHEMA = "bi"
# The published zone is anonymised and meant for BI. It is owner-only unless the operator
# shares it with a BI tool running as another OS user: CDP_PUBLISHED_MODE=group (0640/0750,
# for a BI group) or world (0644/0755). The build runs with umask 077, so the published
# files get their modes explicitly.
PUBLISHED_MODES: dict[str, tuple[int, int]] = {
    "owner": (0o600, 0o700),
    "group": (0o640, 0o750),
    "world": (0o644, 0o755),
}


def published_modes() -> tuple[int, int]:
    """(file mode, folder mode) of the published zone, from ``CDP_PUBLISHED_MODE``."""
    name = (os.environ.get("CDP_PUBLISHED_MODE") or "owner").strip().lower()
    if name not in PUBLISHED_MODES:
        raise PublishError(
            f"CDP_PUBLISHED_MODE must be one of {', '.join(PUBLISHED_MODES)}; got {name[:20]!r}"
        )
    return PUBLISHED_MODES[name]


KEEP_VERSIONS = 2  # the current Parquet version and the one before it (a reader may still hold it)


class PublishError(Exception):
    """Publishing cannot proceed; nothing was replaced."""


class ReleaseHeld(PublishError):
    """Too few people changed since the last release: it stays published (decision 45)."""


@dataclass
class PublishResult:
    """What one publish wrote."""

    database: Path
    parquet_dir: Path
    tables: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    audit: str = ""
    gate: str = ""


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def published_tables(con: duckdb.DuckDBPyConnection, catalog: str) -> list[str]:
    """The tables of the published schema in ``catalog``, sorted."""
    rows = con.execute(
        "select table_name from information_schema.tables "
        "where table_catalog = ? and table_schema = ? and table_type = 'BASE TABLE' "
        "order by table_name",
        [catalog, PUBLISHED_SCHEMA],
    ).fetchall()
    return [str(row[0]) for row in rows]


@dataclass(frozen=True)
class DisclosureControl:
    """What a publish checks beyond the contracts. Only attack tests loosen it."""

    allow_weakened: bool = False  # publish a build made with var disclosure_weaken
    min_changed_people: int | None = None  # the release gate; None: the build's k
    state_dir: Path | None = None  # default: disclosure_audit.state_dir()


def publish(
    warehouse: Path | None = None,
    published_dir: Path | None = None,
    *,
    validate: Callable[[Path], None] | None = None,
    control: DisclosureControl | None = None,
) -> PublishResult:
    """Copy the marts of ``warehouse`` into a new published file and Parquet version, then swap.

    The disclosure audit and the release gate run on the finished new file; then
    ``validate`` is called with it. If any refuses, nothing is replaced and the new
    file is removed.
    """
    started = time.monotonic()
    warehouse = warehouse or paths.warehouse_db()
    target_dir = published_dir or paths.published_dir()
    if not warehouse.exists():
        raise PublishError(f"no warehouse at {warehouse}: build it first (`cdp build`)")
    target_dir.mkdir(parents=True, exist_ok=True)
    versions = target_dir / "versions"
    versions.mkdir(exist_ok=True)
    for folder in (target_dir, versions):
        folder.chmod(published_modes()[1])
    with _publish_lock(target_dir):
        _sweep_interrupted(target_dir, versions)
        result = _publish_locked(
            warehouse, target_dir, versions, validate, control or DisclosureControl()
        )
    result.seconds = time.monotonic() - started
    return result


@contextlib.contextmanager
def _publish_lock(target_dir: Path) -> Iterator[None]:
    """One publisher per folder (flock, released by the kernel if the holder dies)."""
    path = target_dir / ".publish.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PublishError(
                f"another publish into {target_dir} is running; try again when it ends"
            ) from None
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _sweep_interrupted(target_dir: Path, versions: Path) -> None:
    """Remove what a publish killed before its swap left behind (never what readers use).

    Under the publish lock nobody else is writing: temporary files are orphans, and
    so is a version folder that is not the current one and either lacks its
    release.json (written last before the swap) or is newer than the current one.
    """
    for leftover in [*target_dir.glob(".marts-*.duckdb.tmp*"), *target_dir.glob(".parquet-*.tmp")]:
        leftover.unlink(missing_ok=True)
    link = target_dir / "parquet"
    current = link.resolve() if link.exists() else None
    for folder in versions.iterdir():
        if not folder.is_dir() or folder == current:
            continue
        # versions are swapped in in name (time) order: one newer than the current was never
        never_swapped = current is not None and folder.name > current.name
        if never_swapped or not (folder / "release.json").exists():
            shutil.rmtree(folder, ignore_errors=True)


def _publish_locked(
    warehouse: Path,
    target_dir: Path,
    versions: Path,
    validate: Callable[[Path], None] | None,
    control: DisclosureControl,
) -> PublishResult:

    release = f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
    temp_db = target_dir / f".marts-{release}.duckdb.tmp"
    version_dir = versions / release
    temp_link = target_dir / f".parquet-{release}.tmp"
    result = PublishResult(database=target_dir / "marts.duckdb", parquet_dir=version_dir)
    try:
        con = duckdb.connect(str(temp_db))
        try:
            con.execute(f"attach {_sql_string(str(warehouse))} as warehouse (read_only)")
            tables = published_tables(con, "warehouse")
            if not tables:
                raise PublishError(
                    f"the warehouse {warehouse} has no tables in schema {PUBLISHED_SCHEMA}: "
                    "build the marts first (`cdp build`)"
                )
            con.execute(f"create schema {PUBLISHED_SCHEMA}")
            version_dir.mkdir(mode=published_modes()[1])
            version_dir.chmod(published_modes()[1])  # mkdir's mode is filtered by the umask
            for table in tables:
                name = f"{PUBLISHED_SCHEMA}.{_quote(table)}"
                con.execute(f"create table {name} as select * from warehouse.{name}")
                count = con.execute(f"select count(*) from {name}").fetchall()[0][0]
                result.tables[table] = int(count)
                parquet = version_dir / f"{table}.parquet"
                con.execute(f"copy {name} to {_sql_string(str(parquet))} (format parquet)")
                parquet.chmod(published_modes()[0])
                fsync_path(parquet)
            con.execute("detach warehouse")
            con.execute("checkpoint")
        finally:
            con.close()
        (version_dir / "release.json").write_text(
            json.dumps(
                {
                    "release": release,
                    "published_at": datetime.now(UTC).isoformat(),
                    "tables": result.tables,
                },
                indent=2,
            )
        )
        (version_dir / "release.json").chmod(published_modes()[0])
        temp_db.chmod(published_modes()[0])
        fsync_path(version_dir / "release.json")
        fsync_path(version_dir)
        fsync_path(temp_db)
        state_dir, state, entry = _disclosure_control(warehouse, temp_db, release, control, result)
        if validate is not None:
            validate(temp_db)
        # Recorded before the swap: after a crash the gate treats this release as possibly published.
        state.pending = entry
        disclosure_audit.save_state(state_dir, state)
        # The swap: one rename each, atomic; a reader of the old file keeps its inode.
        os.replace(temp_db, result.database)
        os.symlink(Path("versions") / release, temp_link)
        os.replace(temp_link, target_dir / "parquet")
        fsync_path(target_dir)
        state.committed, state.pending = entry, {}
        state.releases.append({key: value for key, value in entry.items() if key != "sketch"})
        disclosure_audit.save_state(state_dir, state)
    except BaseException:
        temp_db.unlink(missing_ok=True)
        Path(str(temp_db) + ".wal").unlink(missing_ok=True)
        if temp_link.is_symlink():
            temp_link.unlink()
        if version_dir.exists() and (target_dir / "parquet").resolve() != version_dir.resolve():
            shutil.rmtree(version_dir, ignore_errors=True)
        raise
    _prune_versions(versions, keep=KEEP_VERSIONS)
    return result


def _disclosure_control(
    warehouse: Path,
    candidate: Path,
    release: str,
    control: DisclosureControl,
    result: PublishResult,
) -> tuple[Path, disclosure_audit.ReleaseState, dict[str, object]]:
    """The disclosure audit and the release gate on the candidate; raises to refuse it."""
    try:
        params = disclosure_audit.parameters_from_warehouse(warehouse)
        if params.weakened and not control.allow_weakened:
            raise PublishError(
                "the marts were built with a test-only weakening of disclosure control "
                f"(var disclosure_weaken: {', '.join(params.weakened)}): rebuild without it"
            )
        report = disclosure_audit.audit_release(candidate, params)
        result.audit = report.summary()
        if not report.passed:
            raise PublishError("the disclosure audit refused the release: " + report.summary())
        sketch = disclosure_audit.population_sketch(warehouse)
        digest = disclosure_audit.content_digest(candidate)
    except disclosure_audit.DisclosureError as exc:
        raise PublishError(f"the disclosure audit could not run: {exc}") from None
    state_dir = control.state_dir or disclosure_audit.state_dir()
    state = disclosure_audit.load_state(state_dir)
    minimum = params.k if control.min_changed_people is None else control.min_changed_people
    decision = disclosure_audit.release_gate(state, sketch, digest, minimum)
    result.gate = decision.reason
    if not decision.allowed:
        raise ReleaseHeld(decision.reason)
    entry: dict[str, object] = {
        "release": release,
        "published_at": datetime.now(UTC).isoformat(),
        "k": params.k,
        "l": params.l,
        "perturbation_max_count_noise": params.max_count_noise,
        "perturbation_sum_magnitude": params.sum_magnitude,
        "suppression_protection": params.protection,
        "weakened": list(params.weakened),
        "audit": report.summary(),
        "gate": decision.reason,
        "changed_people_at_least": decision.changed_at_least,
        "content_digest": digest,
        "sketch": sketch,
    }
    return state_dir, state, entry


def released_before(moment: datetime, target_dir: Path | None = None) -> bool:
    """Whether any release in the published folder was made before ``moment`` (naive UTC)."""
    target_dir = target_dir or paths.published_dir()
    versions = target_dir / "versions"
    made = [target_dir / "marts.duckdb"]
    if versions.exists():
        made += [p / "release.json" for p in versions.iterdir() if p.is_dir()]
    cutoff = moment.replace(tzinfo=UTC).timestamp()
    return any(path.exists() and path.stat().st_mtime < cutoff for path in made)


def withdraw(target_dir: Path | None = None) -> int:
    """Destroy every published release (the file, every Parquet version, the link); how many.

    After an erasure every release made before it may hold the erased person, and
    diffing two of them isolates that person's cells: all are shredded
    (:func:`cdp.destroy.shred_tree`), not merely unlinked. The release state stays: the
    gate keeps holding the next release until enough people changed since the last one
    (a BI user may have kept a copy of it).
    """
    from cdp import destroy

    target_dir = target_dir or paths.published_dir()
    if not target_dir.exists():
        return 0
    with _publish_lock(target_dir):
        versions = target_dir / "versions"
        releases = sorted(p for p in versions.iterdir() if p.is_dir()) if versions.exists() else []
        leftovers = [
            target_dir / "parquet",
            *target_dir.glob(".marts-*"),
            *target_dir.glob(".parquet-*"),
        ]
        for leftover in leftovers:
            if leftover.is_symlink() or leftover.is_dir():
                destroy.shred_tree(leftover)
            elif leftover.exists():
                destroy.shred(leftover)
        database = target_dir / "marts.duckdb"
        had_database = destroy.shred(database)
        destroy.shred(target_dir / "marts.duckdb.wal")
        for release in releases:
            destroy.shred_tree(release)
    return max(len(releases), int(had_database))


def _prune_versions(versions: Path, keep: int) -> None:
    """Remove complete Parquet versions older than the newest ``keep`` (names sort by time)."""
    complete = sorted(p for p in versions.iterdir() if (p / "release.json").exists())
    for old in complete[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _say(message: str) -> None:
    print(f"cdp publish: {message}", file=sys.stderr, flush=True)


def built_k_anonymity(warehouse: Path) -> int:
    """The k the last build suppressed with, from its disclosure ledger (the checkpoint checks it).

    Reading it from the build, not from a setting of its own, keeps the two from
    disagreeing: `cdp build --vars '{k_anonymity: 20}'` is checked at 20.
    """
    try:
        return disclosure_audit.parameters_from_warehouse(warehouse).k
    except (disclosure_audit.DisclosureError, duckdb.Error):
        return disclosure_audit.Parameters().k


def publish_checked() -> bool:
    """Publish the last build's marts after every check; what each command that publishes runs.

    ``cdp build``, ``cdp demo``, ``cdp erase`` and ``cdp publish`` (also
    ``python -m cdp.publish``): the disclosure audit and the release gate
    (:func:`publish`), then the Great Expectations checkpoint on the new file at
    the build's own k. If any refuses, nothing is replaced. Says what happened on
    stderr; True when published.
    """
    from cdp import gx_checkpoint  # it imports this module

    k = built_k_anonymity(paths.warehouse_db())

    def validate(candidate: Path) -> None:
        outcome = gx_checkpoint.run_checkpoint(candidate, k=k)
        _say(f"quality report: {outcome.report_index}")
        if not outcome.success:
            raise PublishError(
                "the Great Expectations checkpoint failed, nothing published: "
                + "; ".join(outcome.failures[:5])
            )

    try:
        result = publish(validate=validate)
    except (PublishError, duckdb.Error) as exc:
        _say(f"publishing failed: {exc}")
        return False
    listed = ", ".join(f"{name} ({rows})" for name, rows in result.tables.items())
    _say(
        f"published {result.database} and {paths.published_parquet()}: {listed} in {result.seconds:.1f} s"
    )
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="cdp publish",
        description=(
            "Validate the last build's anonymised marts (warehouse schema bi: the disclosure "
            "audit, the release gate, the Great Expectations checkpoint) and publish them "
            "atomically to CDP_PUBLISHED_DIR (default data/published)."
        ),
        epilog="exit status: 0 published, 1 refused or failed (the last release stays), "
        "2 usage error",
    )
    parser.parse_args(argv)
    return 0 if publish_checked() else 1


if __name__ == "__main__":
    sys.exit(main())
