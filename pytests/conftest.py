"""Shared fixtures: one generated landing zone and one real dbt build per test run.

dbt runs in-process (dbtRunner): a dbt process start costs seconds here. The
build writes only under a temporary folder (databases, target/, logs/), with
a random master key, so tests never touch a developer's data/ or demo key.

The suite runs on pytest-xdist workers (``-n auto --dist loadscope`` in
pyproject.toml: a module and its module-scoped fixtures stay on one worker).
The session builds (``built``, ``evidenced``) are made once per run, by the
first worker that needs one while the others wait on a file lock, and each
worker then works on its own copy (:func:`shared_build`).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest
from filelock import FileLock

from cdp import keys, normalise, paths, pseudonym, stages
from cdp.dbt_invoke import DbtOutcome

ROOT = paths.PROJECT_ROOT
GENERATOR = ROOT / "scripts" / "generate_landing.py"

# The small landing zone every dbt test builds on.
CUSTOMERS = 300
SEED = 20261129
REFERENCE_DATE = "2026-11-01"

os.environ["DO_NOT_TRACK"] = "1"
os.environ["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"


DbtResult = DbtOutcome

# --------------------------------------------------------------------------- the dbt marker
#
# A test that runs dbt, directly or through a fixture, carries the ``dbt`` marker, so
# ``pytest -m "not dbt"`` (make test-fast) is the quick suite. Two rules keep the marks true:
# a test that uses a fixture of DBT_FIXTURES (or a fixture that uses one) is marked here, and
# an unmarked test that starts dbt in-process (dbtRunner, however it gets there, also from a
# module fixture it sets up) fails at once, naming itself (or the test that first set the
# fixture up). A module names its own dbt fixtures in a module-level ``DBT_FIXTURES``; other
# tests are marked by hand (``pytestmark = pytest.mark.dbt`` or ``@pytest.mark.dbt``), also
# one that reaches a fixture through ``request.getfixturevalue`` or starts dbt only in a
# subprocess (the second rule does not see those).

#: Fixtures that build with dbt (shared by every module).
DBT_FIXTURES = frozenset({"built", "evidenced", "spark_builds"})


# --------------------------------------------------------------------------- opt-in markers
#
# Tests marked ``spark`` need .venv-spark (pyspark, a JDK, the compiled jar) and start a JVM;
# tests marked ``bench`` run a whole benchmark (minutes of builds). Each runs only when the
# marker expression names it (``make test-spark`` = ``-m spark``, ``make test-bench`` =
# ``-m bench``; CI runs both after ``make test``). Every other run (make test, make test-fast)
# leaves them out, reported as deselected.
OPT_IN_MARKERS = ("spark", "bench")


def _named(config: pytest.Config, marker: str) -> bool:
    return marker in (config.getoption("markexpr", "") or "")


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for marker in OPT_IN_MARKERS:
        if _named(config, marker):
            continue
        left_out = [item for item in items if item.get_closest_marker(marker) is not None]
        if left_out:
            config.hook.pytest_deselected(items=left_out)
            items[:] = [item for item in items if item.get_closest_marker(marker) is None]
    for item in items:
        module = getattr(item, "module", None)
        fixtures = DBT_FIXTURES | frozenset(getattr(module, "DBT_FIXTURES", ()))
        if fixtures.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.dbt)
    _heaviest_modules_first(items)


# --------------------------------------------------------------------------- the order
#
# xdist (--dist loadscope --no-loadscope-reorder) hands each worker whole modules in the order
# collected, and a module once handed over is not taken back: a long module handed out last
# keeps one worker busy while the other has nothing left. So the modules that take longest go
# first: those with a test marked ``slow`` (a module-level ``pytestmark`` of the few heavy
# modules), then the other modules that run dbt, then the rest, each group in file order.


def _module_cost(items: Sequence[pytest.Item]) -> int:
    if any(item.get_closest_marker("slow") for item in items):
        return 0
    if any(item.get_closest_marker("dbt") for item in items):
        return 1
    return 2


def _heaviest_modules_first(items: list[pytest.Item]) -> None:
    modules: dict[str, list[pytest.Item]] = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::", 1)[0], []).append(item)
    ordered = sorted(modules.values(), key=_module_cost)  # stable: file order within a group
    items[:] = [item for module in ordered for item in module]


@contextmanager
def _dbt_refused(nodeid: str) -> Iterator[None]:
    from dbt.cli.main import dbtRunner

    def refuse(self: Any, *args: Any, **kwargs: Any) -> Any:
        pytest.fail(
            f"{nodeid} runs dbt but is not marked dbt: add @pytest.mark.dbt (or the module's "
            "pytestmark), so that make test-fast leaves it out",
            pytrace=False,
        )

    original = dbtRunner.invoke
    setattr(dbtRunner, "invoke", refuse)  # noqa: B010
    try:
        yield
    finally:
        setattr(dbtRunner, "invoke", original)  # noqa: B010


#: CDP_TEST_CPU=<file>: record each test's CPU seconds (user + system, setup and teardown
#: included: a shared fixture counts where it is first built) of this process and of the child
#: processes it waited for, one JSON per process (<file>.<xdist worker>.<pid>.json); CPU time,
#: unlike wall time, means something on a loaded machine. scripts/suite_cpu.py sums them.
CPU_REPORT = "CDP_TEST_CPU"
_cpu_seconds: dict[str, float] = {}


def _cpu_now() -> float:
    import resource

    own, children = (
        resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    start = _cpu_now()
    try:
        if item.get_closest_marker("dbt") is not None:
            return (yield)
        with _dbt_refused(item.nodeid):
            return (yield)
    finally:
        _cpu_seconds[item.nodeid] = _cpu_now() - start


def pytest_sessionfinish(session: pytest.Session) -> None:
    report = os.environ.get(CPU_REPORT)
    if report and _cpu_seconds:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        # the pid too: CI's bench and Spark suites both run without xdist, as "main"
        file = Path(f"{report}.{worker}.{os.getpid()}.json")
        file.write_text(json.dumps(_cpu_seconds, indent=0))


@dataclass
class Workspace:
    """Where one build lives, and how to run dbt against it."""

    root: Path
    key: str
    env: dict[str, str]

    @property
    def raw_db(self) -> Path:
        return Path(self.env["CDP_RAW_DB"])

    @property
    def warehouse_db(self) -> Path:
        return Path(self.env["CDP_WAREHOUSE_DB"])

    @property
    def vault_db(self) -> Path:
        return Path(self.env["CDP_VAULT_DB"])

    @property
    def truth_db(self) -> Path:
        return Path(self.env["CDP_TRUTH_DB"])

    def dbt(self, *args: str, env: dict[str, str] | None = None) -> DbtResult:
        return run_dbt(args, {**self.env, **(env or {})}, self.root)

    def record_keys(self, id_type: str) -> Callable[[str | None], str | None]:
        """The keyed pseudonym staging writes for a raw source id (decision 50): the
        trimmed id under the identity key, with its id type (order_id, web_event_id,
        message_event_id, consent_event_id, consent_evidence_ref, request_id)."""
        master = keys.load_master_key({keys.ENV_KEY: self.key})
        identity = keys.pseudonym_key(master, "identity")

        def record_key(raw_id: str | None) -> str | None:
            value = None if raw_id is None else raw_id.strip() or None
            return pseudonym.pseudonym(identity, master.version, id_type, value)

        return record_key

    def record_key(self, id_type: str, raw_id: str) -> str:
        value = self.record_keys(id_type)(raw_id)
        assert value is not None
        return value

    def identifier_key(self, id_type: str, value: str, version: str | None = None) -> str:
        """The identity pseudonym staging writes for an identifier (normalised, then keyed),
        under key version ``version`` (the configured one when None)."""
        env = {keys.ENV_KEY: self.key}
        if version is not None:
            env[keys.ENV_KEY_VERSION] = version
        master = keys.load_master_key(env)
        key = pseudonym.pseudonym(
            keys.pseudonym_key(master, "identity"),
            master.version,
            id_type,
            normalise.normalise_identifier(id_type, value),
        )
        assert key is not None
        return key


@contextmanager
def environment(env: Mapping[str, str], drop: Sequence[str] = ()) -> Iterator[None]:
    """``env`` applied to ``os.environ`` and ``drop`` removed, all restored afterwards."""
    saved = {name: os.environ.get(name) for name in (*env, *drop)}
    for name in drop:
        os.environ.pop(name, None)
    os.environ.update(env)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


#: dbt's environment variable for --exclude-resource-type (make_workspace sets it).
UNIT_TESTS_EXCLUDED = "DBT_EXCLUDE_RESOURCE_TYPES"


def run_dbt(args: Sequence[str], env: dict[str, str], root: Path) -> DbtOutcome:
    """dbt in-process with ``env`` applied (and restored afterwards); every log line kept.

    Build-like commands run stage by stage as ``cdp build`` runs them (cdp.stages):
    privacy (with the key), analytics (without), vault. Key variables (and the unit-test
    exclusion) the caller did not set must not leak in from the outer environment.
    """
    extra: list[str] = []
    if args and args[0] != "debug":
        extra = ["--target-path", str(root / "target"), "--log-path", str(root / "logs")]
    unset = ("CDP_MASTER_KEY", "CDP_MASTER_KEY_FILE", UNIT_TESTS_EXCLUDED)
    drop = [name for name in unset if name not in env]
    with environment(env, drop):
        return stages.run(args, extra=extra)


def generate_landing(
    raw_db: Path,
    truth_db: Path,
    *,
    customers: int = CUSTOMERS,
    seed: int = SEED,
    batch: int = 1,
    dirty_rate: float | None = None,
) -> None:
    """Write a synthetic landing zone with the project's generator (a real run of its CLI)."""
    command = [
        sys.executable,
        str(GENERATOR),
        "--customers",
        str(customers),
        "--seed",
        str(seed),
        "--reference-date",
        REFERENCE_DATE,
        "--batch",
        str(batch),
        "--raw-db",
        str(raw_db),
        "--truth-db",
        str(truth_db),
        "--quiet",
    ]
    if dirty_rate is not None:
        command += ["--dirty-rate", str(dirty_rate)]
    subprocess.run(command, check=True)


def make_workspace(root: Path) -> Workspace:
    root.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    env = {
        "CDP_MASTER_KEY": key,
        "CDP_RAW_DB": str(root / "raw.duckdb"),
        "CDP_WAREHOUSE_DB": str(root / "warehouse.duckdb"),
        "CDP_VAULT_DB": str(root / "vault.duckdb"),
        "CDP_TRUTH_DB": str(root / "truth.duckdb"),
        # Everything a build or publish writes stays in the workspace, never in the
        # developer's data/ (evidence record, published release and its state, reports).
        "CDP_EVIDENCE_DIR": str(root / "evidence"),
        "CDP_PUBLISHED_DIR": str(root / "published"),
        "CDP_QUALITY_REPORT_DIR": str(root / "quality"),
        # dbt's unit tests check SQL against fixed inputs: their outcome depends on the commit,
        # never on a workspace's data, so they run once per test run, in the session build
        # (``built``; test_stages checks every one ran and passed), not in each of the suite's
        # other builds, where they cost about a fifth of a small build's CPU (decision 80).
        UNIT_TESTS_EXCLUDED: "unit_test",
    }
    return Workspace(root=root, key=key, env=env)


def copy_workspace(source: Workspace, root: Path) -> Workspace:
    """A copy of a built workspace's databases under ``root``, with the same key; every output
    (evidence, published release, quality report) kept under ``root`` too, never the source's."""
    workspace = make_workspace(root)
    workspace.key = source.key
    workspace.env["CDP_MASTER_KEY"] = source.key
    for name in ("CDP_RAW_DB", "CDP_WAREHOUSE_DB", "CDP_VAULT_DB", "CDP_TRUTH_DB"):
        shutil.copyfile(source.env[name], workspace.env[name])
    return workspace


def shared_build(
    tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Workspace], None]
) -> Workspace:
    """A workspace made by ``build`` once per test run, as this process's own copy.

    Without xdist, ``build`` runs here. On an xdist worker, the first worker to ask builds in a
    folder of the run's shared temporary directory (keyed by the xdist testrun uid) under a file
    lock; the others wait on the lock and reuse it. Each worker then copies the whole workspace
    (databases, ``target/``, ``logs/``, evidence) into its own folder, so no two workers ever
    open the same database and a test on one worker cannot see another's. The key is kept
    beside the shared workspace, not in it (tests scan workspaces for key material). A failed
    build fails every worker that asks for it, with the builder's message, without a rebuild.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    run_uid = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if not worker or not run_uid:
        workspace = make_workspace(tmp_path_factory.mktemp(name))
        build(workspace)
        return workspace
    shared = tmp_path_factory.getbasetemp().parent / f"shared-{run_uid}"
    shared.mkdir(mode=0o700, exist_ok=True)
    source, key_file, failure = shared / name, shared / f"{name}.key", shared / f"{name}.failed"
    with FileLock(str(shared / f"{name}.lock")):
        if failure.exists():
            pytest.fail(failure.read_text(encoding="utf-8"), pytrace=False)
        if not key_file.exists():
            workspace = make_workspace(source)
            try:
                build(workspace)
            except BaseException as exc:
                failure.write_text(f"the shared build {name!r} failed on {worker}: {exc}")
                raise
            descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(workspace.key)
        key = key_file.read_text(encoding="utf-8")
    root = tmp_path_factory.mktemp(name)
    shutil.copytree(source, root, symlinks=True, dirs_exist_ok=True)
    workspace = make_workspace(root)
    workspace.key = key
    workspace.env["CDP_MASTER_KEY"] = key
    return workspace


def query(db: Path, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
    """The rows of ``sql`` on ``db``, opened read-only and closed again."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        return [tuple(row) for row in con.execute(sql, params or []).fetchall()]
    finally:
        con.close()


def write(db: Path, sql: str, params: Sequence[Any] | None = None) -> None:
    """``sql`` executed on ``db`` (read-write), closed again."""
    con = duckdb.connect(str(db))
    try:
        con.execute(sql, params or [])
    finally:
        con.close()


def run_ok(result: DbtResult) -> DbtResult:
    """``result`` if dbt succeeded; otherwise the test fails with the end of dbt's output."""
    assert result.success, result.output[-4000:]
    return result


# Where the session build keeps a copy of each stage's run_results.json (see _build).
SESSION_RUN_RESULTS = "session_run_results"


def _build(workspace: Workspace) -> None:
    generate_landing(workspace.raw_db, workspace.truth_db)
    # The one build of the run that runs dbt's unit tests too (make_workspace excludes them).
    with_unit_tests = {k: v for k, v in workspace.env.items() if k != UNIT_TESTS_EXCLUDED}
    result = run_dbt(["build"], with_unit_tests, workspace.root)
    if not result.success:
        pytest.fail("dbt build failed on the generated landing zone:\n" + result.output[-6000:])
    # Tests run dbt again in this workspace (``built.dbt("test", ...)``), each overwriting
    # target/<stage>/run_results.json: keep this build's own record where none of them writes.
    record = workspace.root / SESSION_RUN_RESULTS
    record.mkdir()
    targets = stages.stage_target_paths(workspace.root / "target")
    for stage, target in zip(stages.STAGES, targets, strict=True):
        shutil.copyfile(target / "run_results.json", record / f"{stage.name}.json")


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """A landing zone generated and built once per run (``dbt build``); this worker's copy."""
    yield shared_build(tmp_path_factory, "build", _build)


# Three builds on successive as_of dates, a purge before the third, each recorded as evidence.
HISTORY_AS_OF = ("2026-11-01", "2026-11-02", "2026-11-03")


@dataclass
class Evidenced:
    """A workspace built three times, its evidence record and each build's own run_results."""

    workspace: Workspace
    folder: Path
    run_results: list[Path]

    @property
    def target(self) -> Path:
        return self.workspace.root / "target"


def _build_history(workspace: Workspace) -> None:
    """Builds at HISTORY_AS_OF (the third a full refresh after a purge), evidence after each,
    each build's merged run_results kept as ``run_results_<n>.json``."""
    from cdp import evidence
    from cdp.as_of import parse_as_of
    from cdp.purge import purge

    generate_landing(workspace.raw_db, workspace.truth_db)
    for number, as_of in enumerate(HISTORY_AS_OF, start=1):
        args = ["build", "--vars", "{as_of: '" + as_of + "'}"]
        if number == len(HISTORY_AS_OF):
            purge(
                raw_db=workspace.raw_db,
                warehouse_db=workspace.warehouse_db,
                as_of=parse_as_of(as_of),
                operator="pytest",
                environ={"CDP_MASTER_KEY": workspace.key},
            )
            args.append("--full-refresh")
        result = workspace.dbt(*args)
        if not result.success:
            pytest.fail(f"build {number} failed:\n" + result.output[-6000:])
        # The build ran in stages (cdp.stages): its results are the stages' results together.
        targets = stages.stage_target_paths(workspace.root / "target")
        runs = [json.loads((t / "run_results.json").read_text(encoding="utf-8")) for t in targets]
        merged = {
            **runs[0],
            "metadata": {
                **runs[0]["metadata"],
                "invocation_id": ",".join(str(r["metadata"]["invocation_id"]) for r in runs),
            },
            "results": [result for run in runs for result in run["results"]],
        }
        (workspace.root / f"run_results_{number}.json").write_text(
            json.dumps(merged), encoding="utf-8"
        )
        evidence.record(
            targets,
            folder=Path(workspace.env["CDP_EVIDENCE_DIR"]),
            warehouse=workspace.warehouse_db,
            raw=workspace.raw_db,
        )


@pytest.fixture(scope="session")
def evidenced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Evidenced]:
    """Builds at HISTORY_AS_OF (the third a full refresh after a purge), evidence after each;
    made once per run, this worker's copy."""
    workspace = shared_build(tmp_path_factory, "evidenced", _build_history)
    kept = [workspace.root / f"run_results_{n}.json" for n in range(1, len(HISTORY_AS_OF) + 1)]
    yield Evidenced(workspace, Path(workspace.env["CDP_EVIDENCE_DIR"]), kept)


@pytest.fixture(scope="session")
def spark_builds(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One landing zone built on DuckDB and, audited, on Spark (pytests/spark_build.py); once
    per run, for the comparison (test_spark_project.py) and the key-leak scan
    (test_spark_leaks.py). Spark tests run in one process (``-n 0``), so once is once."""
    import spark_build

    return spark_build.make_builds(tmp_path_factory.mktemp("spark_project"))
