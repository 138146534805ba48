"""Key isolation, proved by attack (issue 14, docs/decisions.md "Two stages").

Each test is the attack an analytics engineer (who can write a model or a
macro and run ``dbt build``, ``dbt show --inline`` or ``dbt run-operation``
with the default target) would try. It is shown to succeed against a planted
weak configuration (a dbt project without the key guard, a DuckDB connection
that is not locked down, the old macro-based HMAC, the old vault sealing) and
to fail against the product, in the analytics stage and in the privacy stage.
Afterwards every file the runs wrote is scanned for the key, every derived
key and the HMAC pads, in raw bytes, hex, base64 and SQL literal spellings.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from cdp import dbt_invoke, keys, paths, stages, vault
from cdp.dbt_invoke import DbtOutcome
from cdp.keys import MasterKey, pseudonym_key
from cdp.pseudonym import _IPAD, _OPAD, pseudonym_macro_sql
from conftest import Workspace, copy_workspace, environment
from key_scan import key_markers as shared_key_markers

pytestmark = [pytest.mark.dbt, pytest.mark.slow]

ROOT = paths.PROJECT_ROOT
PROJECT_FILES = (
    "dbt_project.yml",
    "profiles.yml",
    "selectors.yml",
    "models",
    "macros",
    "tests",
    "seeds",
    "docs",
    "analyses",
)


# --------------------------------------------------------------------------- helpers


def _master(ws: Workspace) -> MasterKey:
    return keys.load_master_key({"CDP_MASTER_KEY": ws.key})


def key_markers(ws: Workspace) -> list[bytes]:
    """Every spelling of the key, the derived keys and the HMAC pads an attacker could find
    (:mod:`key_scan`, shared with the Spark scans), and the variable's text as set."""
    markers = shared_key_markers(_master(ws), extra={"variable": ws.key.encode()})
    return list(markers.values())


def scan(folders: Sequence[Path], markers: Sequence[bytes]) -> tuple[int, list[str]]:
    """(files scanned, 'file: marker' for every hit)."""
    hits: list[str] = []
    scanned = 0
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if not path.is_file() or path.is_symlink():
                continue
            data = path.read_bytes()
            scanned += 1
            hits += [f"{path}: {m[:12]!r}..." for m in markers if m in data]
    return scanned, hits


@dataclass
class Analyst:
    """An analytics engineer's dbt: a copy of the project, their own target/ and logs/."""

    project: Path
    env: dict[str, str]
    runs: Path

    def dbt(self, *args: str, env: dict[str, str] | None = None) -> DbtOutcome:
        # One target/ per dbt target, as two checkouts would have: dbt keeps one saved parse
        # per target/ and parses the whole project again when the target changes.
        target = args[args.index("--target") + 1] if "--target" in args else "default"
        extra = [
            "--target-path",
            str(self.runs / f"target-{target}"),
            "--log-path",
            str(self.runs / "logs"),
        ]
        with environment({**self.env, **(env or {})}, drop=_KEY_VARS):
            return dbt_invoke.invoke(
                list(args), project_dir=str(self.project), extra=extra, echo=False
            )

    def show(self, sql: str, *, target: str | None = None, **env: str) -> DbtOutcome:
        args = ["show", "--inline", sql, "--limit", "200"]
        if target:
            args += ["--target", target]
        return self.dbt(*args, env=env)


_KEY_VARS = (keys.ENV_KEY, keys.ENV_KEY_FILE)


def _write_project_copy(dest: Path) -> Path:
    dest.mkdir(parents=True)
    for name in PROJECT_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name)
        elif source.exists():
            shutil.copy2(source, dest / name)
    # The analyst's own model and macros: the attacks written as code.
    attack = dest / "models" / "attack"
    attack.mkdir()
    (attack / "attack_env_model.sql").write_text(
        "{{ config(materialized='table', schema='attack') }}\n"
        'select \'{{ env_var("CDP_MASTER_KEY", "no-key-in-env") }}\' as stolen\n'
    )
    (dest / "macros" / "attack.sql").write_text(
        textwrap.dedent(
            """
            {% macro attack_env() %}
                {% do log('stolen=' ~ env_var('CDP_MASTER_KEY', 'no-key-in-env'), info=true) %}
            {% endmacro %}
            {% macro attack_sql(statement) %}
                {% set result = run_query(statement) %}
                {% do log('rows=' ~ (result.rows | list), info=true) %}
            {% endmacro %}
            """
        )
    )
    return dest


@dataclass
class Scene:
    ws: Workspace
    analyst: Analyst
    key_file: Path
    build_outputs: tuple[Path, ...]  # what the build itself wrote besides the databases


@pytest.fixture(scope="module")
def scene(built: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    """A build by `cdp build`'s stages (a copy of the session's, same key: the attacks
    write into its warehouse), and an analyst with a copy of the project."""
    root = tmp_path_factory.mktemp("isolation")
    ws = copy_workspace(built, root / "ws")
    key_file = root / "secrets" / "master.key"
    key_file.parent.mkdir(mode=0o700)
    key_file.write_text(ws.key)
    os.chmod(key_file, 0o600)
    project = _write_project_copy(root / "project")
    analyst_env = {
        "CDP_WAREHOUSE_DB": str(ws.warehouse_db),
        "CDP_RAW_DB": str(ws.raw_db),
        "CDP_VAULT_DB": str(ws.vault_db),
        "DO_NOT_TRACK": "1",
    }
    outputs = (built.root / "target", built.root / "logs")
    yield Scene(ws, Analyst(project, analyst_env, root / "runs"), key_file, outputs)


def _failed_without(outcome: DbtOutcome, secret: str) -> None:
    assert not outcome.success, outcome.output[-2000:]
    assert secret not in outcome.output


# --------------------------------------------------------------------------- env_var()


def test_env_var_attack_succeeds_without_the_guard(scene: Scene, tmp_path: Path) -> None:
    """Planted weak configuration: a dbt project that dbt_cdp_keyguard does not guard."""
    weak = tmp_path / "weak"
    (weak / "models").mkdir(parents=True)
    (weak / "dbt_project.yml").write_text(
        "name: weak\nversion: '1.0'\nconfig-version: 2\nprofile: weak\n"
        "flags:\n  send_anonymous_usage_stats: false\n"
    )
    (weak / "profiles.yml").write_text(
        f"weak:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n"
        f"      path: '{tmp_path / 'weak.duckdb'}'\n"
    )
    analyst = Analyst(weak, {"DO_NOT_TRACK": "1"}, tmp_path / "runs")
    stolen = analyst.show(
        "select '{{ env_var(\"CDP_MASTER_KEY\") }}' as k", CDP_MASTER_KEY=scene.ws.key
    )
    assert stolen.success
    assert scene.ws.key[:16] in stolen.output  # the attack works where nothing guards


@pytest.mark.parametrize("target", [None, "privacy"])
def test_env_var_attacks_fail(scene: Scene, target: str | None) -> None:
    """The key in the analyst's environment is out of reach of env_var() everywhere."""
    analyst, key = scene.analyst, scene.ws.key
    env = {keys.ENV_KEY: key}
    _failed_without(
        analyst.show("select '{{ env_var(\"CDP_MASTER_KEY\") }}' as k", target=target, **env), key
    )
    model = analyst.dbt("run", "--select", "attack_env_model", env=env)
    assert key not in model.output
    if model.success:  # built with the default value: the key was not there to read
        con = duckdb.connect(str(scene.ws.warehouse_db), read_only=True)
        stolen = con.execute("select stolen from attack.attack_env_model").fetchall()
        con.close()
        assert stolen == [("no-key-in-env",)]
    macro = analyst.dbt("run-operation", "attack_env", env=env)
    assert key not in macro.output
    assert "stolen=no-key-in-env" in macro.output


# --------------------------------------------------------------------------- files


def _file_attacks(scene: Scene) -> dict[str, str]:
    key_file, ws = scene.key_file, scene.ws
    return {
        "read_text key": f"select content from read_text('{key_file}')",
        "read_blob key": f"select content from read_blob('{key_file}')",
        "read_blob vault": f"select content from read_blob('{ws.vault_db}')",
        "read_csv key": f"select * from read_csv('{key_file}', header=false)",
        "glob secrets": f"select * from glob('{key_file.parent}/*')",
    }


def test_file_attacks_succeed_on_an_open_connection(scene: Scene) -> None:
    """Planted weak configuration: DuckDB as dbt-duckdb opens it without the lockdown."""
    con = duckdb.connect(":memory:")
    for name, sql in _file_attacks(scene).items():
        rows = con.execute(sql).fetchall()
        assert rows, name
    assert con.execute(f"select content from read_text('{scene.key_file}')").fetchone() == (
        scene.ws.key,
    )
    con.execute(f"attach '{scene.ws.vault_db}' as stolen (read_only)")
    con.close()


@pytest.mark.parametrize("target", [None, "privacy"])
def test_file_attacks_fail(scene: Scene, target: str | None) -> None:
    analyst, ws = scene.analyst, scene.ws
    env = {keys.ENV_KEY_FILE: str(scene.key_file)} if target else {}
    for name, sql in _file_attacks(scene).items():
        if target and name == "read_blob vault":
            # The privacy stage attaches the vault read-only on purpose (it reads the
            # re-identification log); its bytes are sealed. Key files stay out of reach.
            continue
        outcome = analyst.show(sql, target=target, **env)
        assert not outcome.success, name
        assert "disabled by configuration" in outcome.output or "Permission" in outcome.output
        assert ws.key not in outcome.output
    statements = [
        f"attach '{ws.truth_db}' as stolen (read_only)",
        f"attach '{scene.key_file}' as stolen_key",
        f"copy (select 1 as x) to '{scene.analyst.runs}/out.csv'",
        "set enable_external_access = true",
        "reset lock_configuration",
        "set enable_profiling = 'json'",
    ]
    if target is None:  # in the analytics stage no other zone is attached at all
        statements += [
            f"attach '{ws.vault_db}' as stolen_vault (read_only)",
            f"attach '{ws.raw_db}' as stolen_raw (read_only)",
        ]
    else:  # the privacy stage attaches raw and vault read-only: it cannot write them
        statements += [
            "delete from vault.main.vault_identifiers",
            "create table raw.main.planted as select 1 as x",
        ]
    for statement in statements:
        outcome = analyst.dbt(
            "run-operation",
            "attack_sql",
            "--args",
            f"{{statement: {statement!r}}}",
            *(["--target", target] if target else []),
            env=env,
        )
        assert not outcome.success, statement
    assert not (scene.analyst.runs / "out.csv").exists()


# --------------------------------------------------------------------------- introspection


def test_pads_in_a_macro_definition_give_the_key_back(scene: Scene) -> None:
    """Planted weak configuration: the HMAC as a SQL macro built from the pads (the old plugin)."""
    master = _master(scene.ws)
    domain_key = pseudonym_key(master, "person")
    con = duckdb.connect(":memory:")
    con.execute(pseudonym_macro_sql("cdp_pseudonym_person", domain_key, master.version))
    (definition,) = con.execute(
        "select macro_definition from duckdb_functions() where function_name = "
        "'cdp_pseudonym_person'"
    ).fetchone() or ("",)
    con.close()
    recovered = _keys_from_macro_text(str(definition))
    # HMAC pads a key shorter than its 64-byte block with zeros: the padded key is the key.
    assert domain_key.ljust(64, b"\x00") in recovered
    message = b"email:ivan.petrov@example.com"
    assert hmac.new(domain_key, message, hashlib.sha256).digest() in {
        hmac.new(key, message, hashlib.sha256).digest() for key in recovered
    }


def _keys_from_macro_text(text: str) -> set[bytes]:
    """The attack: every 64-byte blob literal in a definition, XOR 0x36 and 0x5c: the key
    padded to HMAC's block. Not stripped of trailing zeros: a key may end in a zero byte (one
    key in 256 did in a CI run, and the stripped candidate missed it)."""
    import re

    candidates: set[bytes] = set()
    for found in re.finditer(r"((?:\\x[0-9A-Fa-f]{2}){64})", text):
        pad = bytes.fromhex(found.group(1).replace("\\x", ""))
        for mask in (_IPAD, _OPAD):
            candidates.add(bytes(b ^ mask for b in pad))
    return candidates


@pytest.mark.parametrize("target", [None, "privacy"])
def test_introspection_finds_nothing(scene: Scene, target: str | None) -> None:
    analyst, ws = scene.analyst, scene.ws
    env = {keys.ENV_KEY_FILE: str(scene.key_file)} if target else {}
    # run_query logs whole rows (dbt show would truncate long definitions)
    statement = (
        "select function_name, coalesce(macro_definition, '') as body, "
        "coalesce(description, '') as description from duckdb_functions() "
        "where function_name like 'cdp%'"
    )
    functions = analyst.dbt(
        "run-operation",
        "attack_sql",
        "--args",
        f"{{statement: {statement!r}}}",
        *(["--target", target] if target else []),
        env=env,
    )
    assert functions.success, functions.output[-2000:]
    if target is None:
        assert "cdp_pseudonym" not in functions.output  # nothing registered at all
    else:
        assert "cdp_pseudonym_person" in functions.output
        assert _keys_from_macro_text(functions.output) == set()
    settings_ = analyst.show("select name, value from duckdb_settings()", target=target, **env)
    databases = analyst.show(
        "select database_name, coalesce(path, '') as path from duckdb_databases()",
        target=target,
        **env,
    )
    assert settings_.success and databases.success
    if target is None:
        assert str(ws.vault_db) not in databases.output
        assert str(ws.raw_db) not in databases.output
    markers = key_markers(ws)
    for outcome in (functions, settings_, databases):
        assert not any(m.decode("latin-1") in outcome.output for m in markers)


def test_keyed_functions_are_not_callable_by_an_analyst(scene: Scene) -> None:
    analyst = scene.analyst
    for call in (
        "cdp_pseudonym_identity('email', 'ivan@example.com')",
        "cdp_pseudonym_person('email', 'ivan@example.com')",
        "cdp_vault_seal('vault_customer_names', 'v1_x', 'first_name', 'ivan')",
        "cdp_vault_unseal('first_name', 'x')",
        "cdp_key_version()",
        "cdp_normalise_email('Ivan@Example.com')",
    ):
        outcome = analyst.show(f"select {call} as x")
        assert not outcome.success, call
    # In the privacy stage the seal function does not exist either: only the vault stage seals.
    sealed = analyst.show(
        "select cdp_vault_seal('vault_customer_names', 'v1_x', 'first_name', 'ivan') as x",
        target="privacy",
        **{keys.ENV_KEY_FILE: str(scene.key_file)},
    )
    assert not sealed.success


def test_nothing_written_holds_key_material(scene: Scene) -> None:
    """After the build and every attack above: no file holds the key in any spelling."""
    ws = scene.ws
    folders = [*scene.build_outputs, ws.root, scene.analyst.runs, scene.analyst.project]
    scanned, hits = scan(folders, key_markers(ws))
    assert scanned > 20
    assert hits == []


# --------------------------------------------------------------------------- Python models

STEAL_MODEL = """
def model(dbt, session):
    import os
    import pandas
    from cdp import keys
    held = keys._HELD[-1].secret.decode() if keys._HELD else "nothing held"
    with open(os.environ["CDP_TEST_STEAL_TO"], "w") as out:
        out.write(held)
    return pandas.DataFrame({"x": [1]})
"""


def test_a_python_model_would_read_the_held_key_and_is_refused(scene: Scene) -> None:
    """A Python model runs arbitrary Python in the build's process, which holds the key."""
    analyst, ws = scene.analyst, scene.ws
    model = analyst.project / "models" / "attack" / "attack_steal.py"
    model.write_text(STEAL_MODEL)
    try:
        # Planted weak configuration: the key held in the process, Python models allowed.
        loot = analyst.runs / "stolen.txt"
        with keys.holding(_master(scene.ws)):
            analyst.dbt("run", "--select", "attack_steal", env={"CDP_TEST_STEAL_TO": str(loot)})
        assert loot.read_text() == ws.key
        loot.unlink()
        # The product: the staged build refuses a project with a Python model ...
        with environment({**analyst.env, keys.ENV_KEY: ws.key}):
            refused = stages.run(
                ["build", "--select", "attack_steal"],
                extra=["--target-path", str(analyst.runs / "staged")],
                echo=False,
                project_dir=str(analyst.project),
            )
        assert not refused.success
        assert "Python models (attack_steal)" in refused.output
        # ... and so does a plain dbt run of a keyed stage.
        keyed = analyst.dbt(
            "run",
            "--select",
            "attack_steal",
            "--target",
            "privacy",
            env={keys.ENV_KEY_FILE: str(scene.key_file), "CDP_TEST_STEAL_TO": str(loot)},
        )
        assert not keyed.success
        assert "Python models" in keyed.output
        assert ws.key not in keyed.output + refused.output
        assert not loot.exists()
    finally:
        model.unlink()


# --------------------------------------------------------------------------- the vault


def _names(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, bytes]]:
    return [
        (str(a), str(b), bytes(c))
        for a, b, c in con.execute(
            "select customer_key, name_part, sealed_value from main.vault_customer_names "
            "order by all"
        ).fetchall()
    ]


def test_name_dictionary_attack(scene: Scene) -> None:
    """The attacker holds the vault file, an encryption oracle and every name as a dictionary."""
    master = _master(scene.ws)
    cipher = vault.VaultCipher.from_master(master)
    con = duckdb.connect(str(scene.ws.vault_db), read_only=True)
    rows = _names(con)
    con.close()
    table = "vault_customer_names"
    plain = [
        cipher.unseal(table, owner, kind, blob, deterministic=False) for owner, kind, blob in rows
    ]
    dictionary = sorted(set(plain))
    assert len(rows) > 100 and len(dictionary) < len(rows)  # shared names exist

    def attack(vault_rows: list[tuple[str, str, bytes]], oracle: object) -> int:
        recovered = 0
        for owner, kind, blob in vault_rows:
            guesses = {oracle(owner, kind, name): name for name in dictionary}  # type: ignore[operator]
            recovered += blob in guesses
        return recovered

    # Planted weak configuration: the old sealing (deterministic, bound to the name part only).
    def weak_oracle(owner: str, kind: str, name: str) -> bytes:
        return cipher.seal(table, "", kind, name, deterministic=True)

    weak_rows = [(o, k, weak_oracle(o, k, v)) for (o, k, _), v in zip(rows, plain, strict=True)]
    assert attack(weak_rows, weak_oracle) == len(rows)
    assert len({b for _, _, b in weak_rows}) < len(rows)

    # The product: random nonces, bound to the row. The oracle is the product's own seal.
    def oracle(owner: str, kind: str, name: str) -> bytes:
        return cipher.seal(table, owner, kind, name, deterministic=False)

    assert attack(rows, oracle) == 0
    assert len({b for _, _, b in rows}) == len(rows)  # no two rows share a ciphertext


def _vault_copy(scene: Scene, tmp_path: Path) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    copy = tmp_path / "vault.duckdb"
    shutil.copy2(scene.ws.vault_db, copy)
    return copy


def _verify(vault_file: Path, ws: Workspace) -> tuple[int, str]:
    result = subprocess.run(
        [sys.executable, "-m", "cdp.vault", "--vault", str(vault_file), "verify"],
        env={**keys.child_environment(), keys.ENV_KEY: ws.key},
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr


def test_swapped_or_edited_vault_rows_are_detected(scene: Scene, tmp_path: Path) -> None:
    ws = scene.ws
    copy = _vault_copy(scene, tmp_path)
    assert _verify(copy, ws)[0] == 0
    con = duckdb.connect(str(copy))
    (a, blob_a), (b, blob_b) = con.execute(
        "select pseudonym, sealed_value from main.vault_identifiers where id_type = 'email' "
        "order by pseudonym limit 2"
    ).fetchall()
    # Planted weak configuration: with the old authenticated data (the id type alone) a
    # swap between two emails opens silently and answers with the other person's email.
    cipher = vault.VaultCipher.from_master(_master(ws))
    plain_a = cipher.unseal("vault_identifiers", str(a), "email", bytes(blob_a))
    weak_b = cipher.seal("", "", "email", "someone.else@example.com")
    assert cipher.unseal("", "", "email", weak_b) == "someone.else@example.com"

    con.execute(
        "update main.vault_identifiers set sealed_value = ? where pseudonym = ?", [blob_b, a]
    )
    con.execute(
        "update main.vault_identifiers set sealed_value = ? where pseudonym = ?", [blob_a, b]
    )
    con.close()
    code, output = _verify(copy, ws)
    assert code == 4 and "vault_identifiers do not open for their row" in output
    with pytest.raises(vault.VaultTampered):
        cipher.unseal("vault_identifiers", str(a), "email", bytes(blob_b))
    lookup = subprocess.run(
        [sys.executable, "-m", "cdp.vault", "--vault", str(copy), "lookup", "--pseudonym", a,
         "--officer", "Test", "--reason", "DSR-1 tamper check"],
        env={**keys.child_environment(), keys.ENV_KEY: ws.key},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert lookup.returncode == 1
    assert plain_a not in lookup.stdout + lookup.stderr
    assert "does not authenticate for its row" in lookup.stderr

    edited = _vault_copy(scene, tmp_path / "edited")
    con = duckdb.connect(str(edited))
    con.execute(
        "update main.vault_customer_names set sealed_value = "
        "unhex(hex(sealed_value)[1:-2] || 'FF') where rowid = 0"
    )
    con.close()
    code, output = _verify(edited, ws)
    assert code == 4 and "vault_customer_names do not open for their row" in output


def test_deleted_or_edited_log_rows_are_detected(scene: Scene, tmp_path: Path) -> None:
    ws = scene.ws
    copy = _vault_copy(scene, tmp_path)
    env = {**keys.child_environment(), keys.ENV_KEY: ws.key}
    con = duckdb.connect(str(copy), read_only=True)
    (p,) = con.execute("select pseudonym from main.vault_identifiers limit 1").fetchone() or ("",)
    con.close()
    for i in range(4):
        subprocess.run(
            [sys.executable, "-m", "cdp.vault", "--vault", str(copy), "lookup", "--pseudonym",
             str(p), "--officer", "Test", "--reason", f"DSR-{i} access"],
            env=env, capture_output=True, check=True,
        )  # fmt: skip
    assert _verify(copy, ws)[0] == 0

    def tampered(statement: str) -> str:
        target = tmp_path / f"log{abs(hash(statement))}" / "vault.duckdb"
        target.parent.mkdir()
        shutil.copy2(copy, target)
        shutil.copy2(vault.head_path(copy), vault.head_path(target))
        con = duckdb.connect(str(target))
        con.execute(statement)
        con.close()
        code, output = _verify(target, ws)
        assert code == 4, statement
        return output

    assert "missing (deleted)" in tampered("delete from main.reidentification_log where seq = 2")
    assert "was edited" in tampered(
        "update main.reidentification_log set officer = 'Someone else' where seq = 3"
    )
    assert "removed from the end" in tampered("delete from main.reidentification_log where seq = 4")
    assert "no chain position" in tampered(
        "insert into main.reidentification_log (log_id, logged_at, officer, reason, action, "
        "rows_returned, outcome, tool) values ('x', now()::timestamp, 'Forger', 'cover', "
        "'lookup', 0, 'ok', 'cdp.vault')"
    )
    # Swapping whose data was looked up is an edit; only erasure's redaction (a null) is not.
    assert "does not match its commitment" in tampered(
        "update main.reidentification_log set pseudonym = 'v1_' || repeat('0', 64) where seq = 3"
    )
    redacted = tmp_path / "redacted" / "vault.duckdb"
    redacted.parent.mkdir()
    shutil.copy2(copy, redacted)
    shutil.copy2(vault.head_path(copy), vault.head_path(redacted))
    con = duckdb.connect(str(redacted))
    try:
        assert vault.redact_log(con, [str(p)]) == (4, 0)
        assert con.execute(
            "select count(*) from main.reidentification_log where pseudonym is not null"
        ).fetchall() == [(0,)]
    finally:
        con.close()
    assert _verify(redacted, ws)[0] == 0


# The owner-only test of the entry points' files lives in test_crash.py: it shares that
# module's reference ``cdp build`` (one build of the same 60-customer landing zone, not two).
