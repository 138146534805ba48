"""The dbt-duckdb plugin on real DuckDB connections, dbt's own cursors, and a dbt build."""

from __future__ import annotations

import os
import pickle
import re
import secrets
import stat
import textwrap
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pytest
from dbt.adapters.duckdb import environments
from dbt.adapters.duckdb.credentials import DuckDBCredentials
from dbt.adapters.duckdb.plugins import BasePlugin
from dbt_common.exceptions import DbtRuntimeError

from cdp.keys import (
    DOMAINS,
    ENV_KEY,
    ENV_KEY_FILE,
    ENV_KEY_VERSION,
    holding,
    load_master_key,
    pseudonym_key,
)
from cdp.normalise import (
    clean_url,
    device_class,
    normalise_email,
    normalise_name,
    normalise_phone,
    truncate_ip,
)
from cdp.plugin import Plugin, PluginRegistrationError
from cdp.pseudonym import blob_literal, hmac_pads, pseudonym
from cdp.vault import VaultCipher

NORMALISERS: dict[str, Callable[[object], str | None]] = {
    "cdp_normalise_email": normalise_email,
    "cdp_normalise_phone": normalise_phone,
    "cdp_normalise_name": normalise_name,
    "cdp_clean_url": clean_url,
    "cdp_truncate_ip": truncate_ip,
    "cdp_device_class": device_class,
}
SAMPLES: list[str | None] = [
    None,
    "",
    "  Ivan.Petrov@Example.COM ",
    "8 (912) 345-67-89",
    "Пётр",
    "https://u:p@shop.example.com/p/a@b.ru?email=a%40b.ru&utm_source=x#f",
    "203.0.113.77",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) Mobile/15E148",
    "\U0001f600" * 50,
    "x" * 5000,
]


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    value = secrets.token_urlsafe(48)
    monkeypatch.delenv(ENV_KEY_FILE, raising=False)
    monkeypatch.delenv(ENV_KEY_VERSION, raising=False)
    monkeypatch.setenv(ENV_KEY, value)
    return value


@pytest.fixture
def no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (ENV_KEY, ENV_KEY_FILE, ENV_KEY_VERSION):
        monkeypatch.delenv(var, raising=False)


def _plugin(stage: str = "vault") -> Plugin:
    """The plugin of a keyed stage, given the key as `cdp build` gives it (held in memory)."""
    with holding(load_master_key()):
        plugin = BasePlugin.create("cdp.plugin", config={"stage": stage})
    assert isinstance(plugin, Plugin)
    return plugin


def _secret_markers(key: str) -> list[bytes]:
    """Byte strings that would betray the key: the key, derived keys, pads in any spelling."""
    master = load_master_key()
    markers = [key.encode()]
    for domain in DOMAINS:
        derived = pseudonym_key(master, domain)
        ipad, opad = hmac_pads(derived)
        for pad in (ipad, opad):
            markers += [
                pad,
                pad.hex().encode(),
                pad.hex().upper().encode(),
                blob_literal(pad)[1:40].encode(),
            ]
        markers += [derived, derived.hex().encode()]
    return markers


def _expected_row(value: str | None) -> list[object]:
    master = load_master_key()
    row: list[object] = [
        pseudonym(pseudonym_key(master, d), master.version, "email", value) for d in DOMAINS
    ]
    row += [fn(value) for fn in NORMALISERS.values()]
    return row


SELECT_ALL = (
    "SELECT cdp_pseudonym_identity('email', v), cdp_pseudonym_person('email', v), "
    "cdp_pseudonym_partner('email', v), "
    + ", ".join(f"{name}(v)" for name in NORMALISERS)
    + ", cdp_vault_seal('vault_identifiers', 'v1_owner', 'email', v), cdp_key_version() "
    "FROM samples ORDER BY i"
)


def _check_all_functions(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE OR REPLACE TEMP TABLE samples (i INTEGER, v VARCHAR)")
    con.executemany("INSERT INTO samples VALUES (?, ?)", list(enumerate(SAMPLES)))
    rows = con.execute(SELECT_ALL).fetchall()
    cipher = VaultCipher.from_master(load_master_key())
    for value, row in zip(SAMPLES, rows, strict=True):
        *values, sealed, version = row
        assert values == _expected_row(value)
        assert version == "v1"
        if value is None:
            assert sealed is None
        else:
            opened = cipher.unseal("vault_identifiers", "v1_owner", "email", bytes(sealed))
            assert opened == value


# --------------------------------------------------------------------------- functions


def test_every_function_on_connection_and_cursor(key: str) -> None:
    plugin = _plugin()
    con = duckdb.connect()
    plugin.configure_cursor(con)
    _check_all_functions(con)
    cursor = con.cursor()
    plugin.configure_cursor(cursor)
    _check_all_functions(cursor)
    # Idempotent: registering again on either is harmless.
    plugin.configure_connection(con)
    plugin.configure_cursor(cursor)
    plugin.configure_cursor(con)
    _check_all_functions(cursor)
    cursor.close()
    con.close()


def test_cursor_without_configure_lacks_macros(key: str) -> None:
    """Why configure_cursor matters: the temp macro (key version) does not follow a cursor."""
    con = duckdb.connect()
    _plugin().configure_cursor(con)
    bare = con.cursor()
    with pytest.raises(duckdb.CatalogException):
        bare.execute("SELECT cdp_key_version()")
    con.close()


def test_udfs_vectorised_with_duplicates_and_nulls(key: str) -> None:
    plugin = _plugin()
    con = duckdb.connect()
    plugin.configure_cursor(con)
    con.execute(
        "CREATE TABLE many AS SELECT i, CASE WHEN i % 7 = 0 THEN NULL "
        "WHEN i % 3 = 0 THEN ' User' || (i % 50) || '@Example.COM' "
        "WHEN i % 3 = 1 THEN '8912345' || lpad((i % 1000)::VARCHAR, 4, '0') "
        "ELSE 'Имя ' || (i % 20) END AS v FROM range(6000) t(i)"
    )
    got = con.execute(
        "SELECT v, cdp_normalise_email(v), cdp_normalise_phone(v), cdp_normalise_name(v), "
        "cdp_pseudonym_identity('x', v) FROM many ORDER BY i"
    ).fetchall()
    master = load_master_key()
    identity = pseudonym_key(master, "identity")
    for v, email, phone, name, p in got:
        assert email == normalise_email(v)
        assert phone == normalise_phone(v)
        assert name == normalise_name(v)
        assert p == pseudonym(identity, "1", "x", v)
    con.close()


def test_phone_with_region(key: str) -> None:
    con = duckdb.connect()
    _plugin().configure_cursor(con)
    row = con.execute(
        "SELECT cdp_normalise_phone_region('030 901820', 'DE'), "
        "cdp_normalise_phone_region('89123456789', 'RU'), "
        "cdp_normalise_phone_region('030 901820', NULL), "
        "cdp_normalise_phone_region(NULL, 'DE'), cdp_normalise_phone_region('x', 'DE')"
    ).fetchone()
    assert row == ("+4930901820", "+79123456789", None, None, None)
    con.close()


def test_key_version_from_environment(key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_KEY_VERSION, "3")
    con = duckdb.connect()
    _plugin().configure_cursor(con)
    row = con.execute("SELECT cdp_key_version(), cdp_pseudonym_person('email', 'x')").fetchone()
    assert row is not None
    assert row[0] == "v3"
    assert row[1].startswith("v3_")
    con.close()


def test_pseudonym_domains_cannot_be_joined(key: str) -> None:
    con = duckdb.connect()
    _plugin().configure_cursor(con)
    row = con.execute(
        "SELECT cdp_pseudonym_identity('email', 'a@b.ru'), cdp_pseudonym_person('email', "
        "'a@b.ru'), cdp_pseudonym_partner('email', 'a@b.ru')"
    ).fetchone()
    assert row is not None
    assert len(set(row)) == 3
    con.close()


# --------------------------------------------------------------------------- dbt's cursors


def _creds(tmp_path: Path, stage: str = "vault") -> DuckDBCredentials:
    return DuckDBCredentials.from_dict(
        {
            "path": str(tmp_path / "warehouse.duckdb"),
            "schema": "main",
            "threads": 2,
            "plugins": [{"module": "cdp.plugin", "alias": "cdp", "config": {"stage": stage}}],
            "attach": [{"path": str(tmp_path / "vaultdir" / "vault.duckdb"), "alias": "vault"}],
        }
    )


def test_dbt_environment_cursors_see_functions(key: str, tmp_path: Path) -> None:
    with holding(load_master_key()):
        env = environments.create(_creds(tmp_path))
    handles = [env.handle(), env.handle()]  # type: ignore[no-untyped-call]
    try:
        for handle in handles:
            cursor = handle.cursor()
            _check_all_functions(cursor)
    finally:
        for handle in handles:
            handle.close()
        env.close()  # type: ignore[no-untyped-call]
    vault = tmp_path / "vaultdir" / "vault.duckdb"
    assert vault.exists()
    if os.name == "posix":
        assert stat.S_IMODE(vault.stat().st_mode) == 0o600
        assert stat.S_IMODE(vault.parent.stat().st_mode) == 0o700


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "CDP_MASTER_KEY is not set"),
        ({ENV_KEY_FILE: "k9Zq-w3"}, "at least 32 bytes"),
        ({ENV_KEY_FILE: "changeme" * 5}, "placeholder"),
        ({ENV_KEY_FILE: "your-key-here-your-key-here-your-key-here"}, "placeholder"),
        ({ENV_KEY: secrets.token_urlsafe(48)}, "plain dbt run"),
    ],
)
def test_bad_key_fails_before_any_file_is_written(
    no_key: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    expected: str,
) -> None:
    keys_dir = tmp_path.parent / f"{tmp_path.name}-key"
    keys_dir.mkdir()
    for name, value in env.items():
        if name == ENV_KEY_FILE:  # a plain dbt run takes the key from a file
            key_file = keys_dir / "master.key"
            key_file.write_text(value)
            os.chmod(key_file, 0o600)
            monkeypatch.setenv(name, str(key_file))
        else:
            monkeypatch.setenv(name, value)
    with pytest.raises(DbtRuntimeError) as info:
        environments.create(_creds(tmp_path, stage="privacy"))
    message = str(info.value)
    assert "cdp plugin" in message
    assert expected in message
    assert "CDP_MASTER_KEY" in message
    for value in env.values():
        assert value not in message
    assert list(tmp_path.iterdir()) == []  # no warehouse, no vault, nothing


def test_world_readable_key_file_refused(
    no_key: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "master.key"
    secret = secrets.token_urlsafe(48)
    key_file.write_text(secret)
    os.chmod(key_file, 0o644)
    monkeypatch.setenv(ENV_KEY_FILE, str(key_file))
    with pytest.raises(DbtRuntimeError) as info:
        BasePlugin.create("cdp.plugin", config={"stage": "privacy"})
    assert "chmod 600" in str(info.value)
    assert secret not in str(info.value)


def test_key_in_profile_config_is_refused(key: str) -> None:
    value = secrets.token_urlsafe(48)
    for name in ("master_key", "secret", "CDP_MASTER_KEY"):
        with pytest.raises(DbtRuntimeError) as info:
            BasePlugin.create("cdp.plugin", config={name: value})
        assert "must never be in profiles.yml" in str(info.value)
        assert value not in str(info.value)


def test_settings_must_be_connection_options(key: str, tmp_path: Path) -> None:
    """dbt-duckdb SETs `settings` on every cursor, which the locked configuration refuses.

    They are refused with one message that names them (never their values);
    anything naming the master key is refused as a secret first.
    """
    creds = DuckDBCredentials.from_dict(
        {
            "path": str(tmp_path / "w.duckdb"),
            "schema": "main",
            "settings": {"s3_access_key_id": "AKIAEXAMPLE"},
            "plugins": [{"module": "cdp.plugin", "alias": "cdp"}],
        }
    )
    with pytest.raises(DbtRuntimeError) as info:
        BasePlugin.create("cdp.plugin", config={"stage": "analytics"}, credentials=creds)
    assert "config_options" in str(info.value)
    assert "s3_access_key_id" in str(info.value)
    assert "AKIAEXAMPLE" not in str(info.value)
    with pytest.raises(DbtRuntimeError, match=r"must never be in profiles\.yml"):
        BasePlugin.create("cdp.plugin", config={"s3_access_key_id": "A"}, credentials=None)
    creds.settings = {"cdp_master_key": "x" * 40}
    with pytest.raises(DbtRuntimeError, match=r"must never be in profiles\.yml"):
        BasePlugin.create("cdp.plugin", credentials=creds)
    assert not (tmp_path / "w.duckdb").exists()


def test_stage_must_be_named(key: str) -> None:
    with pytest.raises(DbtRuntimeError, match="must name the stage"):
        BasePlugin.create("cdp.plugin", config={})
    with pytest.raises(DbtRuntimeError, match="must name the stage"):
        BasePlugin.create("cdp.plugin", config={"stage": "everything"})


# --------------------------------------------------------------------------- no leaks


def test_plugin_never_exposes_key_material(key: str) -> None:
    plugin = _plugin()
    markers = _secret_markers(key)
    texts = [repr(plugin), str(plugin), repr(vars(plugin)), repr(plugin._material)]
    for text in texts:
        for marker in markers:
            assert marker.decode("latin-1") not in text
    with pytest.raises(TypeError):
        pickle.dumps(plugin)


def test_registration_failure_does_not_leak(key: str) -> None:
    plugin = _plugin()
    markers = _secret_markers(key)

    def assert_clean(exc: BaseException) -> None:
        text = "".join(traceback.format_exception(exc))
        assert exc.__context__ is None or exc.__suppress_context__
        for marker in markers:
            assert marker.decode("latin-1") not in text
        assert "CREATE" not in text.upper().replace("CREATE_FUNCTION", "")

    # A closed connection.
    con = duckdb.connect()
    con.close()
    with pytest.raises(PluginRegistrationError) as closed:
        plugin.configure_cursor(con)
    assert_clean(closed.value)
    assert "cdp plugin: could not" in str(closed.value)

    # No SQL statement holds key material any more: the definitions of the
    # registered functions show none either (the attack suite reads them too).
    con = duckdb.connect()
    plugin.configure_cursor(con)
    definitions = con.execute(
        "SELECT coalesce(macro_definition, '') || coalesce(description, '') "
        "FROM duckdb_functions() WHERE function_name LIKE 'cdp_%'"
    ).fetchall()
    con.close()
    assert definitions
    for (text,) in definitions:
        for marker in markers:
            assert marker.decode("latin-1") not in text


@pytest.mark.parametrize(
    "setting",
    [
        "SET enable_profiling = 'json'",
        "PRAGMA enable_profiling",
        "SET enable_logging = true",
        "SET log_query_path = '{tmp}/queries.log'",
    ],
)
def test_refuses_connections_that_record_statements(key: str, tmp_path: Path, setting: str) -> None:
    con = duckdb.connect()
    con.execute(setting.format(tmp=tmp_path))
    with pytest.raises(PluginRegistrationError, match="logging or profiling is on"):
        _plugin().configure_connection(con)
    con.close()
    for path in tmp_path.iterdir():
        for marker in _secret_markers(key):
            assert marker not in path.read_bytes()


def test_second_key_in_same_database_is_detected(key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    first = _plugin()
    con = duckdb.connect()
    first.configure_cursor(con)
    monkeypatch.setenv(ENV_KEY, secrets.token_urlsafe(48))
    second = _plugin()
    cursor = con.cursor()
    with pytest.raises(PluginRegistrationError, match="different key"):
        second.configure_cursor(cursor)
    con.close()


# --------------------------------------------------------------------------- dbt build


@pytest.fixture
def dbt_project(tmp_path: Path) -> Iterator[Path]:
    project = tmp_path / "proj"
    (project / "models").mkdir(parents=True)
    (project / "dbt_project.yml").write_text(
        textwrap.dedent(
            """
            name: cdp_plugin_test
            version: "1.0"
            config-version: 2
            profile: cdp_plugin_test
            flags:
              send_anonymous_usage_stats: false
            models:
              cdp_plugin_test:
                +materialized: table
            """
        )
    )
    (project / "profiles.yml").write_text(
        textwrap.dedent(
            f"""
            cdp_plugin_test:
              target: local
              outputs:
                local:
                  type: duckdb
                  path: "{project / "warehouse.duckdb"}"
                  threads: 2
                  attach:
                    - path: "{project / "vault" / "vault.duckdb"}"
                      alias: vault
                  plugins:
                    - module: cdp.plugin
                      alias: cdp
                      config: {{stage: vault}}
            """
        )
    )
    for i in range(3):
        (project / "models" / f"m{i}.sql").write_text(
            "select v, cdp_pseudonym_identity('email', cdp_normalise_email(v)) as p, "
            "cdp_vault_seal('vault_identifiers', 'v1_x', 'email', v) as sealed, "
            "cdp_key_version() as key_version "
            f"from (values (' Ivan{i}@Example.com '), ('a{i}@b.ru'), (null)) t(v)"
        )
    yield project


@pytest.mark.dbt
def test_dbt_build_uses_functions_and_leaks_nothing(
    key: str, dbt_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dbt.cli.main import dbtRunner

    monkeypatch.setenv("DO_NOT_TRACK", "1")
    monkeypatch.chdir(dbt_project)
    # A plain dbt run takes the key from an owner-only file, never from CDP_MASTER_KEY.
    key_file = dbt_project.parent / "master.key"
    key_file.write_text(key)
    os.chmod(key_file, 0o600)
    monkeypatch.delenv(ENV_KEY)
    monkeypatch.setenv(ENV_KEY_FILE, str(key_file))
    result = dbtRunner().invoke(
        [
            "build",
            "--project-dir",
            str(dbt_project),
            "--profiles-dir",
            str(dbt_project),
            "--log-path",
            str(dbt_project / "logs"),
            "--target-path",
            str(dbt_project / "target"),
            "--threads",
            "2",
            "--no-partial-parse",
        ]
    )
    assert result.success, result.exception
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    if DuckDBConnectionManager._ENV is not None:
        DuckDBConnectionManager._ENV.close()
        DuckDBConnectionManager._ENV = None

    con = duckdb.connect(str(dbt_project / "warehouse.duckdb"), read_only=True)
    identity = pseudonym_key(load_master_key(), "identity")
    for i in range(3):
        rows = con.execute(f"SELECT v, p, key_version FROM main.m{i}").fetchall()
        assert len(rows) == 3
        for v, p, version in rows:
            assert p == pseudonym(identity, "1", "email", normalise_email(v))
            assert version == "v1"
    con.close()

    markers = _secret_markers(key)
    scanned = 0
    for path in dbt_project.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            scanned += 1
            for marker in markers:
                assert marker not in data, f"key material in {path.relative_to(dbt_project)}"
    assert scanned > 5
    assert re.search(
        rb"cdp_pseudonym_identity",
        (dbt_project / "target")
        .joinpath("run", "cdp_plugin_test", "models", "m0.sql")
        .read_bytes(),
    )
