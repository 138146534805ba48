"""Crash safety: a ``cdp build`` killed (SIGKILL) at random points, then run again.

One landing zone (60 customers) is built twice from the same raw zone, key and
``as_of``: once uninterrupted (warehouse A, the reference) and once with kills
(warehouse B). ``cdp build`` runs as a subprocess in its own process group, and
the whole group is killed with SIGKILL:

1. at a random moment of the dbt phase (a random fraction of the reference's
   dbt time), while models are being written;
2. at a random moment after dbt reported success, while the marts are being
   validated (Great Expectations) and published.

After each kill the published ``marts.duckdb``, if there is one, opens
read-only and every table in it is queryable, the ``parquet`` link (if any)
points at a complete version, and the warehouse's build lock is free. Then the
build runs to completion, and the profile relations, audiences, warehouse BI
marts, published BI tables and Parquet files equal the reference by checksum.
Temporary files a killed publish leaves in the published folder are reported
as a warning (they are never read, but nothing removes them).

The seed is random per run and printed in every assertion message; set
``CDP_CRASH_SEED`` to replay one.

The reference build is also the build of the owner-only test (moved here from
test_key_isolation.py): it is started from a shell whose umask would make files
world-readable, in a workspace laid out as the demo's, and that test then runs
pack, purge, access export and the vault tool on it. One ``cdp build`` serves
both (it was two of the same 60-customer landing zone); each test keeps all its
assertions. The kills and reruns (warehouse B) build from their own copy of the
landing zone taken before the reference build, so neither test sees the other's
writes, whichever runs first.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pytest

from cdp import keys, paths
from cdp.build_lock import lock_path
from conftest import Workspace, generate_landing, make_workspace

pytestmark = [pytest.mark.dbt, pytest.mark.slow]

AS_OF_VARS = '{as_of: "2026-11-02"}'
CUSTOMERS = 60
WAREHOUSE_RELATIONS = (
    "marts.dim_customer_profile",
    "marts.fct_profile_events",
    "marts.rpt_email_audience",
    "marts.rpt_sms_audience",
    "marts.rpt_push_audience",
)
DBT_DONE = "cdp: dbt build"  # the line cdp prints when the dbt phase ends
BUILD_TIMEOUT = 900.0


@dataclass
class Run:
    """One ``cdp build`` subprocess: how it ended and what it was doing."""

    returncode: int | None
    killed: bool
    seconds: float
    dbt_seconds: float | None  # from start to the end of the dbt phase, if reached
    stderr: str
    last_log: str = ""
    notes: list[str] = field(default_factory=list)


def _env(root: Path, base: dict[str, str], name: str) -> dict[str, str]:
    return {
        **os.environ,
        **base,
        "DO_NOT_TRACK": "1",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_PROFILES_DIR": str(paths.PROJECT_ROOT),
        "CDP_WAREHOUSE_DB": str(root / name / "warehouse.duckdb"),
        "CDP_VAULT_DB": str(root / name / "vault.duckdb"),
        "CDP_PUBLISHED_DIR": str(root / name / "published"),
        "CDP_QUALITY_REPORT_DIR": str(root / name / "quality"),
    }


def _last_log_line(log: Path) -> str:
    """The last line of dbt's log that names a node (what was running at the kill)."""
    if not log.exists():
        return "(no dbt log yet)"
    lines = log.read_text(errors="replace").splitlines()
    for line in reversed(lines):
        if "Began running node" in line or "Finished running node" in line:
            return line.split("]: ", 1)[-1].strip()
    return (lines[-1].split("]: ", 1)[-1].strip() if lines else "(empty dbt log)")[:200]


def _cdp_build(
    env: dict[str, str],
    work: Path,
    *,
    kill_at: float | None = None,
    kill_after_dbt: float | None = None,
    umask: int | None = None,
    stderr_dir: Path | None = None,
) -> Run:
    """Run ``cdp build``; SIGKILL its process group ``kill_at`` s after start, or
    ``kill_after_dbt`` s after the dbt phase reported success; under ``umask`` if given.
    Its stderr is kept in ``stderr_dir`` (default: ``work``)."""
    work.mkdir(parents=True, exist_ok=True)
    err_dir = work if stderr_dir is None else stderr_dir
    err_dir.mkdir(parents=True, exist_ok=True)
    err_path = err_dir / f"stderr-{time.monotonic_ns()}.txt"
    command = [
        sys.executable,
        "-m",
        "cdp.cli",
        "build",
        "--vars",
        AS_OF_VARS,
        "--target-path",
        str(work / "target"),
        "--log-path",
        str(work / "logs"),
    ]
    started = time.monotonic()
    dbt_seconds: float | None = None
    killed = False
    last_log = ""
    with err_path.open("w") as err:
        process = subprocess.Popen(
            command,
            env=env,
            cwd=paths.PROJECT_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
            preexec_fn=None if umask is None else functools.partial(os.umask, umask),
        )
        try:
            while process.poll() is None:
                now = time.monotonic() - started
                if now > BUILD_TIMEOUT:
                    raise AssertionError(f"cdp build did not end in {BUILD_TIMEOUT} s")
                if dbt_seconds is None and DBT_DONE in err_path.read_text(errors="replace"):
                    dbt_seconds = now
                due = (kill_at is not None and now >= kill_at) or (
                    kill_after_dbt is not None
                    and dbt_seconds is not None
                    and now >= dbt_seconds + kill_after_dbt
                )
                if due:
                    last_log = _last_log_line(work / "logs" / "dbt.log")
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
                    killed = True
                    break
                time.sleep(0.05)
        finally:
            if process.poll() is None:  # a failed assertion above: leave nothing running
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    stderr = err_path.read_text(errors="replace")
    if dbt_seconds is None and DBT_DONE in stderr:
        dbt_seconds = time.monotonic() - started
    return Run(
        returncode=None if killed else process.returncode,
        killed=killed,
        seconds=time.monotonic() - started,
        dbt_seconds=dbt_seconds,
        stderr=stderr,
        last_log=last_log,
    )


def _checksum(con: duckdb.DuckDBPyConnection, relation: str) -> tuple[int, str]:
    rows = con.execute(f"select * from {relation} order by all").fetchall()
    return len(rows), hashlib.sha256(repr(rows).encode()).hexdigest()


def _bi_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    rows = con.execute(
        "select table_name from information_schema.tables "
        "where table_schema = 'bi' and table_type = 'BASE TABLE' order by 1"
    ).fetchall()
    return [f"bi.{row[0]}" for row in rows]


def _results(env: dict[str, str]) -> dict[str, tuple[int, str]]:
    """Checksums of the warehouse relations and of the published BI tables."""
    sums: dict[str, tuple[int, str]] = {}
    con = duckdb.connect(env["CDP_WAREHOUSE_DB"], read_only=True)
    try:
        for relation in (*WAREHOUSE_RELATIONS, *_bi_tables(con)):
            sums[f"warehouse:{relation}"] = _checksum(con, relation)
    finally:
        con.close()
    published = Path(env["CDP_PUBLISHED_DIR"]) / "marts.duckdb"
    con = duckdb.connect(str(published), read_only=True)
    try:
        for relation in _bi_tables(con):
            sums[f"published:{relation}"] = _checksum(con, relation)
    finally:
        con.close()
    parquet = Path(env["CDP_PUBLISHED_DIR"]) / "parquet"
    for file in sorted(parquet.glob("*.parquet")):
        con = duckdb.connect()
        try:
            sums[f"parquet:{file.stem}"] = _checksum(con, f"read_parquet('{file}')")
        finally:
            con.close()
    return sums


def _assert_published_intact(env: dict[str, str], context: str) -> list[str]:
    """The published file (if any) opens and every table reads; the parquet link is whole.

    Returns the leftovers of an interrupted publish (temporary files), for the report.
    """
    published_dir = Path(env["CDP_PUBLISHED_DIR"])
    database = published_dir / "marts.duckdb"
    if database.exists():
        try:
            con = duckdb.connect(str(database), read_only=True)
        except duckdb.Error as exc:
            raise AssertionError(f"{context}: published {database} does not open: {exc}") from exc
        try:
            tables = _bi_tables(con)
            assert tables, f"{context}: published {database} has no bi tables"
            for table in tables:
                _checksum(con, table)  # every row readable
        finally:
            con.close()
        assert not Path(str(database) + ".wal").exists(), f"{context}: published file has a WAL"
    link = published_dir / "parquet"
    if link.is_symlink() or link.exists():
        target = link.resolve()
        assert target.is_dir(), f"{context}: parquet link points at missing {target}"
        release = json.loads((target / "release.json").read_text())
        assert sorted(p.stem for p in target.glob("*.parquet")) == sorted(release["tables"]), (
            f"{context}: parquet version {target} is incomplete"
        )
        for file in target.glob("*.parquet"):
            con = duckdb.connect()
            try:
                rows = con.execute(f"select count(*) from read_parquet('{file}')").fetchall()
            finally:
                con.close()
            assert rows[0][0] == release["tables"][file.stem], f"{context}: {file}"
    if not published_dir.exists():
        return []
    partial = [
        f"versions/{p.name}"
        for p in (published_dir / "versions").glob("*")
        if not (p / "release.json").exists()
    ]
    return sorted(p.name for p in published_dir.glob(".*tmp*")) + sorted(partial)


def _assert_lock_free(env: dict[str, str], context: str) -> None:
    """No process holds the warehouse's build lock (the kernel released the dead one's)."""
    path = lock_path(Path(env["CDP_WAREHOUSE_DB"]))
    if not path.exists():
        return
    fd = os.open(path, os.O_RDWR)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AssertionError(f"{context}: the build lock {path} is still held") from None
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@dataclass
class Reference:
    """The landing zone and the reference build (warehouse A) in ``ws``, as the demo lays it
    out; the kills' own copy of the landing zone; what A holds, taken before any test runs."""

    ws: Workspace
    env: dict[str, str]
    run: Run
    expected: dict[str, tuple[int, str]]
    landing_b: Path


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reference]:
    """One uninterrupted ``cdp build`` (the reference, and the owner-only test's build),
    started under umask 022: files it does not restrict itself would be world-readable."""
    root = tmp_path_factory.mktemp("crash")
    # The workspace folder is the user's own (owner-only, as `make demo` makes data/): made
    # here with that mode, not with whatever umask this process has when the fixture runs
    # (an in-process dbt run earlier on this worker sets 077; before one, it is the shell's).
    (root / "ws").mkdir(mode=0o700)
    ws = make_workspace(root / "ws")
    generate_landing(ws.raw_db, ws.truth_db, customers=CUSTOMERS)
    # The kills build from the landing zone as it was generated, whatever a test does to A's.
    landing_b = root / "landing_b"
    landing_b.mkdir()
    shutil.copyfile(ws.raw_db, landing_b / ws.raw_db.name)
    shutil.copyfile(ws.truth_db, landing_b / ws.truth_db.name)
    env = {
        **keys.child_environment(),
        **ws.env,
        "DO_NOT_TRACK": "1",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_PROFILES_DIR": str(paths.PROJECT_ROOT),
        "CDP_QUALITY_REPORT_DIR": str(ws.root / "auditor"),
        "DBT_TARGET_PATH": str(ws.root / "target"),
        "DBT_LOG_PATH": str(ws.root / "logs"),
    }
    # its stderr beside the workspace: the owner-only test judges every file in it
    run = _cdp_build(env, ws.root, umask=0o022, stderr_dir=root / "stderr")
    assert run.returncode == 0, f"the reference build failed\n{run.stderr[-3000:]}"
    assert run.dbt_seconds is not None
    yield Reference(ws, env, run, _results(env), landing_b)


def test_build_killed_at_random_points_recovers_to_the_same_result(
    reference: Reference, tmp_path: Path
) -> None:
    seed = int(os.environ.get("CDP_CRASH_SEED") or random.SystemRandom().randrange(2**32))
    rng = random.Random(seed)
    # The reference (fixture): one uninterrupted build, same raw zone, key and as_of.
    expected = reference.expected
    assert reference.run.dbt_seconds is not None
    dbt_seconds = reference.run.dbt_seconds
    publish_seconds = reference.run.seconds - dbt_seconds

    # The crashes, against warehouse B (its own evidence record, the landing zone's copy).
    env_b = {
        **_env(tmp_path, reference.ws.env, "b"),
        "CDP_RAW_DB": str(reference.landing_b / reference.ws.raw_db.name),
        "CDP_TRUTH_DB": str(reference.landing_b / reference.ws.truth_db.name),
        "CDP_EVIDENCE_DIR": str(tmp_path / "b" / "evidence"),
    }
    kills = [
        ("dbt phase", {"kill_at": rng.uniform(0.1, 0.7) * dbt_seconds}),
        ("publish phase", {"kill_after_dbt": rng.uniform(0.05, 0.85) * publish_seconds}),
    ]
    report: list[str] = [
        f"seed {seed}; reference {reference.run.seconds:.1f} s (dbt phase {dbt_seconds:.1f} s)"
    ]
    for phase, when in kills:
        run = _cdp_build(
            env_b,
            tmp_path / "b",
            kill_at=when.get("kill_at"),
            kill_after_dbt=when.get("kill_after_dbt"),
        )
        context = f"seed {seed}, kill in {phase} {when}"
        report.append(
            f"{phase} {when}: killed={run.killed} after {run.seconds:.1f} s, "
            f"dbt done={run.dbt_seconds is not None}, last node: {run.last_log}"
        )
        leftovers = _assert_published_intact(env_b, context)
        if leftovers:
            report.append(f"  leftovers in the published folder: {leftovers}")
        _assert_lock_free(env_b, context)

    final = _cdp_build(env_b, tmp_path / "b")
    summary = "\n".join(report)
    print(summary)
    assert final.returncode == 0, f"{summary}\nrerun after the kills failed:\n{final.stderr}"
    leftovers = _assert_published_intact(env_b, f"seed {seed}, after the rerun")
    actual = _results(env_b)
    differing = sorted(
        k for k in expected.keys() | actual.keys() if expected.get(k) != actual.get(k)
    )
    assert differing == [], f"{summary}\nrelations differ from the reference: {differing}"
    # the rerun's publish sweeps what a killed publish left behind
    assert leftovers == [], f"{summary}\nleft behind after the rerun: {leftovers}"

    # The checksums can fail: one changed value in one profile row changes them.
    con = duckdb.connect(env_b["CDP_WAREHOUSE_DB"], read_only=True)
    try:
        con.execute("create temp table p as select * from marts.dim_customer_profile")
        con.execute("update p set person_key = person_key || 'x' where rowid = 0")
        assert _checksum(con, "p") != expected["warehouse:marts.dim_customer_profile"]
        assert _checksum(con, "p")[0] == expected["warehouse:marts.dim_customer_profile"][0] > 0
    finally:
        con.close()


# --------------------------------------------------------------------------- files on disk


def _group_or_world_readable(folder: Path) -> list[str]:
    found = []
    for path in [folder, *folder.rglob("*")]:
        if path.is_symlink():
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            found.append(f"{oct(mode)} {path}")
    return found


def test_every_file_the_entry_points_create_is_owner_only(reference: Reference) -> None:
    """cdp build (the demo's path; the reference build, see the module doc), pack, purge,
    access export and the vault tool, started from a shell whose umask would make files
    world-readable."""
    ws, env = reference.ws, reference.env

    def run(*argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *argv],
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            preexec_fn=lambda: os.umask(0o022),
        )

    assert reference.run.returncode == 0, reference.run.stderr[-3000:]
    con = duckdb.connect(str(ws.raw_db), read_only=True)
    (email,) = con.execute(
        "select email from crm.customers where email like '%@%' limit 1"
    ).fetchone() or ("",)
    con.close()
    steps = [
        run("-m", "cdp.pack.build", "--out", str(ws.root / "pack")),
        run(str(paths.PROJECT_ROOT / "scripts" / "purge.py"), "--vault-db", str(ws.vault_db),
            "--report", str(ws.root / "purge_report.json")),
        run("-m", "cdp.access", "export", "--id-type", "email", "--value", "-",
            "--officer", "Test", "--reason", "DSR-7 access", "--out",
            str(ws.root / "export.json"), "--summary", str(ws.root / "summary.txt"),
            stdin=email + "\n"),
        run("-m", "cdp.vault", "--vault", str(ws.vault_db), "verify"),
    ]  # fmt: skip
    for step in steps:
        assert step.returncode in (0, 3), [*step.args[:3], step.stderr[-2000:]]
    created = sorted(p.name for p in ws.root.iterdir())
    for expected in ("warehouse.duckdb", "vault.duckdb", "target", "logs", "pack", "published"):
        assert expected in created
    assert (ws.root / "export.json").exists()
    assert _group_or_world_readable(ws.root) == []
