"""A build in three stages, each with only the privileges it needs.

=========  ==========  ===============================================  =================
stage      target      what runs                                        holds
=========  ==========  ===============================================  =================
privacy    ``privacy``  seeds, staging, identity resolution: whatever   the key (Python
                        reads the raw zone or derives keyed values       closures only),
                                                                         raw + vault read-only
analytics  ``local``    everything downstream: consent, rights,         the warehouse file
                        profile, audiences, BI, audit, their tests       only; no key
vault      ``vault``    the vault models (its only writers) and the     the key, raw
                        warehouse-wide scan for unkeyed hashes          read-only, vault
=========  ==========  ===============================================  =================

Which node belongs to which stage is said once, by tags in
``dbt_project.yml`` (``privacy_stage``, ``vault_stage``) and the three
selectors of ``selectors.yml``; a test (``test_stages``) proves every node is
in exactly one stage. DuckDB is locked down in every stage once its files are
attached (``cdp.plugin``).

:func:`run` runs one dbt command (``build``, ``run``, ``test``, ``seed``,
``compile``) through the stages in order, parsing the project once and
handing the same manifest to each stage. A user's own selection
(``--select``/``--exclude``) is honoured: each stage runs the selected
nodes that belong to it, and a stage with none is skipped, so a command that
touches only the analytics stage needs no key. The key is taken out of the
environment before dbt starts (:func:`cdp.keys.take_master_key`) and handed to
the plugin in memory. The privacy and vault stages write their dbt artefacts
under ``<target-path>/privacy`` and ``<target-path>/vault``; the analytics
stage writes ``<target-path>`` itself, as a plain ``dbt build`` would. Each
stage's ``run_results.json`` is its own; ``manifest.json`` is written once, when
the command's last stage is done, the same file in each of those dirs (every
node the command compiled; dbt would rewrite it after every stage).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import hashlib
import json
import os
import pickle
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml  # type: ignore[import-untyped]

from cdp import dbt_invoke, keys, paths
from cdp.dbt_invoke import DbtOutcome


@dataclass(frozen=True)
class Stage:
    name: str
    target: str
    selector: str
    keyed: bool


#: The stages, in the order a build runs them.
STAGES: Final[tuple[Stage, ...]] = (
    Stage("privacy", "privacy", "privacy_stage", keyed=True),
    Stage("analytics", "local", "analytics_stage", keyed=False),
    Stage("vault", "vault", "vault_stage", keyed=True),
)
#: dbt commands that build or test nodes: run stage by stage.
STAGED_COMMANDS: Final = frozenset({"build", "run", "test", "seed", "compile"})
_SELECTION_FLAGS: Final = frozenset(
    {"--select", "-s", "--models", "-m", "--exclude", "--selector", "--resource-type"}
)
_PARSE_FLAGS: Final = frozenset({"--vars"})
#: The warehouse-wide scan for unkeyed hashes of identifiers (a vault-stage test): every keyed
#: ``build`` that writes models runs it last, whatever its selection (docs/decisions.md, 61).
HASH_SCAN: Final = "assert_no_unkeyed_hash_of_identifiers"
_WRITING_TYPES: Final = frozenset({"model", "seed", "snapshot"})


def _option_values(args: Sequence[str], names: frozenset[str]) -> tuple[list[str], list[str]]:
    """Split ``args`` into (the named options with their values, everything else)."""
    picked: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        name = arg.split("=", 1)[0]
        if name in names:
            if "=" in arg:
                picked.append(arg)
                i += 1
                continue
            picked.append(arg)
            i += 1
            while i < len(args) and not args[i].startswith("-"):
                picked.append(args[i])
                i += 1
            continue
        rest.append(arg)
        i += 1
    return picked, rest


def _target_path(extra: Sequence[str]) -> tuple[Path, list[str]]:
    """The ``--target-path`` of ``extra`` (default ``target``) and ``extra`` without it."""
    rest: list[str] = []
    found = Path(os.environ.get("DBT_TARGET_PATH") or paths.PROJECT_ROOT / "target")
    i = 0
    while i < len(extra):
        if extra[i] == "--target-path" and i + 1 < len(extra):
            found = Path(extra[i + 1])
            i += 2
            continue
        rest.append(extra[i])
        i += 1
    return found, rest


def stage_target_path(target_path: Path, stage: Stage) -> Path:
    """Where ``stage`` writes its dbt artefacts under the command's ``target_path``: a keyed
    stage in ``<target-path>/<stage>``, the analytics stage in ``<target-path>`` itself."""
    return target_path / stage.name if stage.keyed else target_path


def stage_target_paths(target_path: Path | None = None) -> list[Path]:
    """Where each stage writes its dbt artefacts, in stage order (for the evidence record)."""
    base, _ = _target_path([] if target_path is None else ["--target-path", str(target_path)])
    return [stage_target_path(base, stage) for stage in STAGES]


def python_models(manifest: Any) -> list[str]:
    """The project's Python models: they would run arbitrary Python in the build process."""
    return sorted(
        str(node.name)
        for node in manifest.nodes.values()
        if getattr(node, "language", "sql") == "python"
    )


def python_models_refused(names: Sequence[str]) -> str:
    return (
        f"cdp: the project has Python models ({', '.join(names)}); a Python model runs "
        f"arbitrary Python inside the build, whose keyed stages hold the master key in "
        f"memory, so the build refuses them. Write them as SQL models (docs/decisions.md, 35)"
    )


#: The project's parsed manifests, by what the parse read (:func:`_parse_key`): a
#: process that runs several staged commands on an unchanged project (``cdp erase``: refresh,
#: rebuild, test; a test session: hundreds of builds on copies of one landing zone) parses
#: it once per distinct input instead of once per command (about 6 s of CPU each), and hands
#: each command its own copy: unpickled from the bytes kept here (median 0.04 s of CPU with the
#: collector held off; ``copy.deepcopy`` of the manifest took 0.9 s, decision 94).
_PARSED: dict[str, bytes] = {}
#: The project's own files, whose state a parse depends on, and the folders dbt_project.yml
#: names for the rest (dbt's defaults when it names none).
_PROJECT_FILES: Final = ("dbt_project.yml", "profiles.yml", "selectors.yml", "packages.yml")
_PATH_SETTINGS: Final = {
    "model-paths": ["models"],
    "macro-paths": ["macros"],
    "seed-paths": ["seeds"],
    "test-paths": ["tests"],
    "analysis-paths": ["analyses"],
    "snapshot-paths": ["snapshots"],
    "docs-paths": [],
}
#: Environment variables whose value a parse may read (profiles.yml, dbt's flags). A path
#: counts by its file name only: that names the database; the folder does not enter the
#: manifest (the parsed manifests of two workspaces differ in nothing else).
_PARSE_ENV_PREFIXES: Final = ("CDP_", "DBT_")
#: dbt's variables that only select what a command runs (``--exclude-resource-type``); a parse
#: reads none of them. The test suite's builds exclude the unit tests, its session build does
#: not: one parse serves both.
_SELECTION_ONLY_ENV: Final = frozenset({"DBT_EXCLUDE_RESOURCE_TYPES", "DBT_RESOURCE_TYPES"})
#: Vars that only a running node reads: a parse's manifest is the same whatever their value,
#: so the cache key leaves them out (a test session passes a dozen ``as_of`` values, each a
#: full parse of about 25 s of CPU; the disclosure attacks a dozen weakenings).
#: ``pytests/test_parse_cache.py`` fails when one of them is read where dbt's parse would see
#: it (docs/decisions.md, 76 and 92).
RUN_TIME_VARS: Final = frozenset({"as_of", "disclosure_weaken"})


def _parse_args_key(parse_args: Sequence[str]) -> list[str]:
    """``parse_args`` as the cache key reads them: each ``--vars`` mapping without the
    :data:`RUN_TIME_VARS` (canonical JSON), left out when nothing else remains (no vars and
    an empty mapping parse alike); anything that is not a mapping as it is."""
    out: list[str] = []
    i = 0
    while i < len(parse_args):
        arg = parse_args[i]
        if arg == "--vars" and i + 1 < len(parse_args):
            flag, text, i = "--vars", parse_args[i + 1], i + 2
        elif arg.startswith("--vars="):
            flag, text, i = "--vars=", arg.split("=", 1)[1], i + 1
        else:
            out.append(arg)
            i += 1
            continue
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = None
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            out += [flag, text] if flag == "--vars" else [flag + text]
            continue
        kept = {k: v for k, v in value.items() if k not in RUN_TIME_VARS}
        if kept:
            canonical = json.dumps(kept, sort_keys=True, default=repr)
            out += [flag, canonical] if flag == "--vars" else [flag + canonical]
    return out


def _parse_key(parse_args: Sequence[str], extra: Sequence[str], project_dir: str | None) -> str:
    """A digest of everything a parse reads: the project's files (path, size, mtime), the
    parse's arguments (``--vars``, but the values of :data:`RUN_TIME_VARS`), dbt's other
    arguments but its output paths, and the environment variables dbt or the profile may
    read (never the key's)."""
    root = Path(project_dir or paths.project_dir())
    digest = hashlib.sha256()
    for item in (str(root.resolve()), *_parse_args_key(parse_args)):
        digest.update(item.encode() + b"\0")
    i = 0
    while i < len(extra):
        if extra[i] in ("--log-path", "--target-path"):  # where dbt writes, not what it reads
            i += 2
            continue
        digest.update(extra[i].encode() + b"\0")
        i += 1
    for name in sorted(os.environ):
        if not name.startswith(_PARSE_ENV_PREFIXES) or name.startswith(keys.ENV_KEY):
            continue
        if name in _SELECTION_ONLY_ENV:
            continue
        value = os.environ[name]
        digest.update(f"{name}={Path(value).name if os.path.isabs(value) else value}\0".encode())
    files = [root / name for name in _PROJECT_FILES]
    project = yaml.safe_load((root / "dbt_project.yml").read_text(encoding="utf-8")) or {}
    folders = {
        folder
        for setting, default in _PATH_SETTINGS.items()
        for folder in (project.get(setting) or default)
    }
    for folder in sorted(folders):
        files += sorted(path for path in (root / folder).rglob("*") if path.is_file())
    for path in files:
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        digest.update(f"{path.relative_to(root)}:{stat.st_size}:{stat.st_mtime_ns}\0".encode())
    return digest.hexdigest()


def _parse(parse_args: Sequence[str], extra: Sequence[str], project_dir: str | None) -> DbtOutcome:
    """``dbt parse``, or a fresh copy of the manifest this process parsed from the same
    inputs. A copy, because a run compiles into the manifest it is given."""
    key = _parse_key(parse_args, extra, project_dir)
    cached = _PARSED.get(key)
    if cached is not None:
        try:
            manifest = _unpickled(cached)
        except Exception:  # a copy that cannot be made: forgotten, and the project parsed again
            del _PARSED[key]
        else:
            return DbtOutcome(
                True, ["cdp: the project is unchanged since its last parse"], None, manifest
            )
    # --no-write-json: the staged command writes the manifest once, when its stages are done
    # (:func:`_write_artifacts`); partial_parse.msgpack and perf_info.json are written still.
    parsed = dbt_invoke.invoke(
        ["parse", "--no-write-json", *parse_args], extra=extra, echo=False, project_dir=project_dir
    )
    if parsed.success and parsed.result is not None and not parsed.result.env_vars:
        # A manifest that read environment variables through env_var() is not cached: the
        # key would have to hold their values.
        # Kept only if a copy can be made from it (tried once here, 0.05 s). A manifest that
        # cannot be pickled, whatever an object of it raises, is parsed again next time: a
        # cache, never a failed command.
        with contextlib.suppress(Exception):
            data = _pickled(parsed.result)
            _unpickled(data)
            _PARSED[key] = data
    return parsed


def _pickled(manifest: Any) -> bytes:
    """The manifest's class and its public fields, pickled. Not the manifest itself: dbt
    1.11's ``Manifest.__reduce_ex__`` (which ``copy.deepcopy`` uses too) passes its fields by
    position and misses three of them, so a copy's later fields shift by one or two; a parse
    whose ref lookup was built then handed a copy whose source lookup was a ref lookup
    ("find() missing 1 required positional argument", decision 94). The private fields are
    the lookups and the macros by name and package (caches the manifest rebuilds from the
    public fields when first asked), the parser's counters and a lock (both made new by the
    constructor)."""
    state = {
        field.name: getattr(manifest, field.name)
        for field in dataclasses.fields(manifest)
        if not field.name.startswith("_")
    }
    return pickle.dumps((type(manifest), state), protocol=pickle.HIGHEST_PROTOCOL)


def _unpickled(data: bytes) -> Any:
    """A fresh manifest from :func:`_pickled`'s bytes. The collector is held off meanwhile:
    the manifest is a few hundred thousand new objects, and the collections they set off cost
    (median 0.044 s of CPU without, 0.068 s with, up to 0.24 s)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        kind, state = pickle.loads(data)  # noqa: S301 - bytes this process pickled itself
        return kind(**state)
    finally:
        if enabled:
            gc.enable()


def _take_key() -> tuple[keys.MasterKey | None, str | None]:
    """The key (taken out of the environment before dbt's key guard drops it), or why not."""
    try:
        return keys.take_master_key(), None
    except keys.KeyConfigError as exc:
        return None, f"cdp: {exc}"


def _ls(
    manifest: Any, selection: Sequence[str], common: Sequence[str], project_dir: str | None = None
) -> set[str] | None:
    outcome = dbt_invoke.invoke(
        ["ls", "--output", "name", "--quiet", *selection, *common],
        echo=False,
        manifest=manifest,
        project_dir=project_dir,
    )
    if not outcome.success or not isinstance(outcome.result, list):
        return None
    return {str(item) for item in outcome.result}


def run(
    args: Sequence[str],
    *,
    extra: Sequence[str] = (),
    echo: bool = True,
    project_dir: str | None = None,
) -> DbtOutcome:
    """``dbt <args>`` stage by stage (see the module docs); other commands run as they are."""
    if not args or args[0] not in STAGED_COMMANDS:
        return dbt_invoke.invoke(args, extra=extra, echo=echo, project_dir=project_dir)
    command, options = args[0], list(args[1:])
    if any(o == "--target" or o.startswith("--target=") or o == "-t" for o in options):
        return DbtOutcome(
            False,
            [
                "cdp: the stages choose their own targets (privacy, local, vault); "
                "run a single target with plain dbt instead"
            ],
        )
    # Before dbt starts: its key guard (dbt_cdp_keyguard) removes the key from the environment.
    master, key_error = _take_key()
    with contextlib.ExitStack() as stack:
        if master is not None:
            stack.enter_context(keys.holding(master))
        return _run_staged(command, options, extra, echo, key_error, project_dir)


def _run_staged(
    command: str,
    options: list[str],
    extra: Sequence[str],
    echo: bool,
    key_error: str | None,
    project_dir: str | None,
) -> DbtOutcome:
    target_path, common_extra = _target_path(extra)
    selection, rest = _option_values(options, _SELECTION_FLAGS)
    parse_options, _ = _option_values(options, _PARSE_FLAGS)

    parsed = _parse(parse_options, ["--target-path", str(target_path), *common_extra], project_dir)
    if not parsed.success or parsed.result is None:
        return DbtOutcome(False, ["cdp: dbt parse failed", *parsed.messages], parsed.exception)
    manifest = parsed.result
    python = python_models(manifest)
    if python:
        return DbtOutcome(False, [python_models_refused(python)])
    ls_common = [*parse_options, "--target-path", str(target_path), *common_extra]

    plan: list[tuple[Stage, list[str]]] = []
    if not selection:
        plan = [(stage, ["--selector", stage.selector]) for stage in STAGES]
    else:
        # Without a --select, dbt would apply the target's default selector (one stage):
        # a --resource-type or --exclude alone narrows the whole project instead.
        named = {"--select", "-s", "--models", "-m", "--selector"}
        if not any(arg.split("=", 1)[0] in named for arg in selection):
            selection = ["--select", "fqn:*", *selection]
        chosen = _ls(manifest, selection, ls_common, project_dir)
        if chosen is None:
            return DbtOutcome(False, ["cdp: the selection could not be resolved by dbt ls"])
        for stage in STAGES:
            members = _ls(manifest, ["--selector", stage.selector], ls_common, project_dir)
            if members is None:
                return DbtOutcome(False, [f"cdp: the {stage.name} stage could not be listed"])
            nodes = chosen & members
            if stage.name == "vault" and _adds_hash_scan(command, manifest, chosen, selection):
                if key_error is None:
                    nodes.add(HASH_SCAN)
                elif echo:
                    print(
                        f"cdp: {HASH_SCAN} (the scan for unkeyed hashes) needs the key: "
                        f"not run; the next keyed build runs it",
                        file=sys.stderr,
                        flush=True,
                    )
            if nodes:
                plan.append((stage, ["--select", *sorted(nodes), "--indirect-selection", "empty"]))

    messages: list[str] = []
    results: list[Any] = []
    failure: DbtOutcome | None = None
    if key_error is not None and any(stage.keyed for stage, _ in plan):
        if echo:
            print(key_error, file=sys.stderr, flush=True)
        return DbtOutcome(False, [key_error])
    written: list[Path] = []
    try:
        for stage, stage_selection in plan:
            if failure is not None and stage.name != "vault":
                break  # the vault stage depends on the raw zone only: it still runs
            stage_path = stage_target_path(target_path, stage)
            messages.append(f"cdp: {stage.name} stage (target {stage.target})")
            # --no-write-json: dbt would write the shared manifest after every stage (about
            # 2 s each at 300 customers); its run_results are written here instead.
            outcome = dbt_invoke.invoke(
                [command, *rest, *stage_selection, "--target", stage.target, "--no-write-json"],
                extra=["--target-path", str(stage_path), *common_extra],
                echo=echo,
                manifest=manifest,
                project_dir=project_dir,
            )
            written.append(stage_path)
            _write_run_results(outcome.result, stage_path)
            messages += outcome.messages
            results.append(outcome.result)
            if not outcome.success:
                if stage.name == "privacy":
                    return DbtOutcome(False, messages, outcome.exception, StagedResult(results))
                failure = failure or outcome
    finally:
        _write_manifest(manifest, [target_path, *written])
    if failure is not None:
        return DbtOutcome(False, messages, failure.exception, StagedResult(results))
    return DbtOutcome(True, messages, None, StagedResult(results))


def _write_run_results(result: Any, stage_path: Path) -> None:
    """A stage's ``run_results.json``, as dbt writes it when ``--write-json`` is on."""
    if hasattr(result, "write"):
        result.write(str(stage_path / "run_results.json"))


def _write_manifest(manifest: Any, folders: Sequence[Path]) -> None:
    """The manifest, once the command's stages are done, into every stage's target dir.

    Every stage compiles into the one manifest, so after the last stage it holds every node
    the command compiled: serialised once (dbt's ``write_manifest``: ``manifest.json`` and
    ``semantic_manifest.json``), copied to the other dirs.
    """
    from dbt.parser.manifest import write_manifest

    unique = list(dict.fromkeys(folders))
    first, others = unique[0], unique[1:]
    first.mkdir(parents=True, exist_ok=True)
    write_manifest(manifest, str(first))
    for folder in others:
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("manifest.json", "semantic_manifest.json"):
            if (first / name).is_file():
                shutil.copyfile(first / name, folder / name)


def _adds_hash_scan(
    command: str, manifest: Any, chosen: set[str], selection: Sequence[str]
) -> bool:
    """Whether a selected ``build`` gets the hash scan added: it writes a model, seed or
    snapshot, and the user's selection neither chose nor named the scan."""
    if command != "build" or HASH_SCAN in chosen:
        return False
    if any(HASH_SCAN in arg for arg in selection):
        return False  # excluded by name: the user's choice
    writing = {
        str(node.name)
        for node in manifest.nodes.values()
        if str(getattr(node, "resource_type", "")) in _WRITING_TYPES
    }
    return bool(chosen & writing)


class StagedResult:
    """The dbt results of each stage that ran; ``results`` lists every node's result."""

    def __init__(self, stage_results: Sequence[Any]) -> None:
        self.stage_results = list(stage_results)

    @property
    def results(self) -> list[Any]:
        out: list[Any] = []
        for result in self.stage_results:
            out += list(getattr(result, "results", None) or [])
        return out
