"""Vault sealing, the vault file and the privacy officer's tool (real DuckDB files)."""

from __future__ import annotations

import json
import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from dbt.adapters.duckdb.plugins import BasePlugin
from hypothesis import given, settings
from hypothesis import strategies as st

from cdp import vault
from cdp.keys import (
    ENV_KEY,
    ENV_KEY_FILE,
    ENV_KEY_VERSION,
    holding,
    load_master_key,
    pseudonym_key,
    vault_nonce_key,
)
from cdp.plugin import Plugin
from cdp.pseudonym import hmac_sha256_hex, pseudonym
from cdp.vault import (
    NONCE_BYTES,
    TAG_BYTES,
    VaultCipher,
    VaultError,
    prepare_vault_file,
)

IDENTIFIERS = [
    ("email", "ivan.petrov@example.com"),
    ("phone", "+79123456789"),
    ("customer_id", "CRM-000123"),
    ("email", "maria.sidorova@example.org"),
]
NAMES = [("CRM-000123", "first_name", "zinaida"), ("CRM-000123", "last_name", "kuznetsova")]
PLAINTEXTS = [v for _, v in IDENTIFIERS] + [v for _, _, v in NAMES]


@pytest.fixture
def master_env(monkeypatch: pytest.MonkeyPatch) -> str:
    key = secrets.token_urlsafe(48)
    monkeypatch.delenv(ENV_KEY_FILE, raising=False)
    monkeypatch.delenv(ENV_KEY_VERSION, raising=False)
    monkeypatch.setenv(ENV_KEY, key)
    return key


def _cipher() -> VaultCipher:
    return VaultCipher.from_master(load_master_key())


def _identity(id_type: str, value: str) -> str:
    master = load_master_key()
    p = pseudonym(pseudonym_key(master, "identity"), master.version, id_type, value)
    assert p is not None
    return p


def build_vault(path: Path) -> None:
    """Write the vault as dbt does: an in-memory build connection with the vault attached."""
    prepare_vault_file(path)
    con = duckdb.connect()
    con.execute(f"ATTACH '{path}' AS vault")
    with holding(load_master_key()):
        plugin = BasePlugin.create("cdp.plugin", config={"stage": "vault"})
    assert isinstance(plugin, Plugin)
    plugin.configure_cursor(con)
    con.execute("CREATE TEMP TABLE ids (id_type VARCHAR, id_value VARCHAR)")
    con.executemany("INSERT INTO ids VALUES (?, ?)", IDENTIFIERS)
    con.execute("CREATE TEMP TABLE names (customer_id VARCHAR, attribute VARCHAR, v VARCHAR)")
    con.executemany("INSERT INTO names VALUES (?, ?, ?)", NAMES)
    con.execute(
        "CREATE TABLE vault.main.vault_identifiers AS SELECT pseudonym, id_type, "
        "cdp_vault_seal('vault_identifiers', pseudonym, id_type, id_value) AS sealed_value, "
        "cdp_key_version() AS key_version FROM (SELECT "
        "cdp_pseudonym_identity(id_type, id_value) AS pseudonym, id_type, id_value FROM ids)"
    )
    con.execute(
        "CREATE TABLE vault.main.vault_customer_names AS SELECT customer_key, attribute, "
        "cdp_vault_seal('vault_customer_names', customer_key, attribute, v) AS sealed_value, "
        "cdp_key_version() AS key_version FROM (SELECT "
        "cdp_pseudonym_identity('customer_id', customer_id) AS customer_key, attribute, v "
        "FROM names)"
    )
    con.execute("CHECKPOINT vault")
    con.close()


@pytest.fixture
def vault_file(tmp_path: Path, master_env: str) -> Path:
    path = tmp_path / "data" / "vault.duckdb"
    build_vault(path)
    return path


def _log(path: Path) -> list[dict[str, object]]:
    con = duckdb.connect(str(path), read_only=True)
    cur = con.execute("SELECT * FROM main.reidentification_log ORDER BY logged_at")
    names = [d[0] for d in cur.description or []]
    rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    con.close()
    return rows


def _file_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    wal = path.with_name(path.name + ".wal")
    return data + (wal.read_bytes() if wal.exists() else b"")


# --------------------------------------------------------------------------- sealing


T, OWNER = "vault_identifiers", "v1_" + "ab" * 32


def test_seal_unseal_round_trip(master_env: str) -> None:
    cipher = _cipher()
    for id_type, value in [*IDENTIFIERS, ("email", ""), ("name", "Пётр 😀" * 50)]:
        blob = cipher.seal(T, OWNER, id_type, value)
        assert len(blob) == NONCE_BYTES + len(value.encode()) + TAG_BYTES
        assert value.encode() not in blob or value == ""
        assert cipher.unseal(T, OWNER, id_type, blob) == value


@settings(max_examples=50, deadline=None)
@given(
    kind=st.sampled_from(["email", "phone", "first_name"]),
    owner=st.text(min_size=1, max_size=80).filter(lambda t: "\x00" not in t),
    value=st.text(max_size=100),
    deterministic=st.booleans(),
)
def test_seal_round_trip_any_text(kind: str, owner: str, value: str, deterministic: bool) -> None:
    cipher = VaultCipher(b"e" * 32, b"n" * 32, "1")
    blob = cipher.seal(T, owner, kind, value, deterministic=deterministic)
    assert cipher.unseal(T, owner, kind, blob, deterministic=deterministic) == value


def test_identifiers_deterministic_names_random(master_env: str) -> None:
    cipher = _cipher()
    a = cipher.seal(T, OWNER, "email", "ivan@example.com")
    assert a == cipher.seal(T, OWNER, "email", "ivan@example.com")
    assert a != cipher.seal(T, OWNER, "email", "ivan@example.co")
    assert a[:NONCE_BYTES] != cipher.seal(T, OWNER, "phone", "ivan@example.com")[:NONCE_BYTES]
    master = load_master_key()
    nonce_key = vault_nonce_key(master)
    aad = vault.entry_aad(T, OWNER, "email", "1")
    expected = hmac_sha256_hex(nonce_key, aad + b"\x00ivan@example.com")[:24]
    assert a[:NONCE_BYTES].hex() == expected
    # Names: one value sealed 50 times gives 50 different ciphertexts, all opening.
    names = {
        cipher.seal("vault_customer_names", OWNER, "first_name", "ivan", deterministic=False)
        for _ in range(50)
    }
    assert len(names) == 50
    for blob in names:
        assert (
            cipher.unseal("vault_customer_names", OWNER, "first_name", blob, deterministic=False)
            == "ivan"
        )


def test_entry_is_bound_to_its_row(master_env: str) -> None:
    """A sealed value moved to another row, type, table or key version does not open."""
    cipher = _cipher()
    blob = cipher.seal(T, OWNER, "email", "ivan@example.com")
    for table, owner, kind in [
        (T, "v1_" + "cd" * 32, "email"),  # another person's row
        (T, OWNER, "phone"),  # another id type
        ("vault_customer_names", OWNER, "email"),  # another table
    ]:
        with pytest.raises(vault.VaultTampered):
            cipher.unseal(table, owner, kind, blob)
    with pytest.raises(vault.VaultTampered):
        VaultCipher.from_master(load_master_key(), "2").unseal(T, OWNER, "email", blob)
    edited = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(vault.VaultTampered):
        cipher.unseal(T, OWNER, "email", edited)
    with pytest.raises(VaultError, match="truncated"):
        cipher.unseal(T, OWNER, "email", blob[:20])
    with pytest.raises(ValueError):
        cipher.seal(T, OWNER, "em\x00ail", "x")


def test_cipher_never_printed_or_pickled(master_env: str) -> None:
    import pickle

    cipher = _cipher()
    assert "redacted" in repr(cipher)
    with pytest.raises(TypeError):
        pickle.dumps(cipher)


# --------------------------------------------------------------------------- the file


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_prepare_vault_file_is_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "new" / "vault.duckdb"
    prepare_vault_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    duckdb.connect(str(path)).close()  # a valid database
    os.chmod(path, 0o644)
    prepare_vault_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_vault_file_holds_no_plaintext(vault_file: Path) -> None:
    data = _file_bytes(vault_file)
    assert b"vault_identifiers" in data  # the file is written and readable
    for plaintext in PLAINTEXTS:
        assert plaintext.encode() not in data


# --------------------------------------------------------------------------- the tool


def test_lookup_decrypts_and_logs(vault_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = _identity("email", "ivan.petrov@example.com")
    rc = vault.main(
        [
            "--vault",
            str(vault_file),
            "lookup",
            "--pseudonym",
            p,
            "--officer",
            "A. Officer",
            "--reason",
            "DSR-2024-017 access request",
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "email\tivan.petrov@example.com\tv1" in out
    log = _log(vault_file)
    assert len(log) == 1
    entry = log[0]
    assert entry["officer"] == "A. Officer"
    assert entry["reason"] == "DSR-2024-017 access request"
    assert entry["action"] == "lookup"
    assert entry["pseudonym"] == p
    assert entry["rows_returned"] == 1
    assert entry["outcome"] == "ok"
    assert entry["logged_at"] is not None
    assert "ivan" not in json.dumps(log, default=str)
    for plaintext in PLAINTEXTS:
        assert plaintext.encode() not in _file_bytes(vault_file)


def test_lookup_customer_returns_names_too(
    vault_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = _identity("customer_id", "CRM-000123")
    argv = ["--vault", str(vault_file), "lookup", "--pseudonym", p, "--json"]
    assert vault.main([*argv, "--officer", "B", "--reason", "DSR-18 erasure"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert {(f["id_type"], f["value"]) for f in found} == {
        ("customer_id", "CRM-000123"),
        ("first_name", "zinaida"),
        ("last_name", "kuznetsova"),
    }
    assert _log(vault_file)[-1]["rows_returned"] == 3


def test_lookup_reads_names_as_the_dbt_model_writes_them(
    vault_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """models/staging/vault/vault_customer_names.sql calls the column name_part."""
    con = duckdb.connect(str(vault_file))
    con.execute("ALTER TABLE main.vault_customer_names RENAME COLUMN attribute TO name_part")
    con.close()
    p = _identity("customer_id", "CRM-000123")
    argv = ["--vault", str(vault_file), "lookup", "--pseudonym", p, "--json"]
    assert vault.main([*argv, "--officer", "B", "--reason", "DSR-18 erasure"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert ("first_name", "zinaida") in {(f["id_type"], f["value"]) for f in found}


def test_lookup_unknown_pseudonym(vault_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--vault", str(vault_file), "lookup", "--pseudonym", "v1_" + "0" * 64]
    assert vault.main([*argv, "--officer", "B", "--reason", "DSR-19 access"]) == 3
    assert "holds nothing" in capsys.readouterr().out
    entry = _log(vault_file)[-1]
    assert (entry["rows_returned"], entry["outcome"]) == (0, "not_found")


def test_find_normalises_and_logs_no_plaintext(
    vault_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--vault", str(vault_file), "find", "--id-type", "email"]
    who = ["--officer", "C. Officer", "--reason", "DSR-20 verification"]
    assert vault.main([*argv, "--value", "  Ivan.Petrov@EXAMPLE.com ", *who]) == 0
    out = capsys.readouterr().out
    p = _identity("email", "ivan.petrov@example.com")
    assert p in out
    assert "held by the vault: yes" in out
    assert vault.main([*argv, "--value", "nobody@example.com", *who]) == 3
    assert "held by the vault: no" in capsys.readouterr().out
    assert vault.main([*argv, "--value", "not-an-email", *who]) == 3
    assert "not a valid email" in capsys.readouterr().out
    log = _log(vault_file)
    assert [e["outcome"] for e in log] == ["ok", "not_found", "invalid_value"]
    assert log[0]["pseudonym"] == p
    assert log[0]["id_type"] == "email"
    text = json.dumps(log, default=str).lower()
    assert "ivan" not in text
    assert "nobody" not in text
    assert "not-an-email" not in text
    data = _file_bytes(vault_file).lower()
    assert b"nobody@example.com" not in data
    assert b"ivan.petrov" not in data


def test_find_reads_value_from_stdin(
    vault_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO("8 (912) 345-67-89\n"))
    argv = ["--vault", str(vault_file), "find", "--id-type", "phone", "--value", "-"]
    assert vault.main([*argv, "--officer", "D", "--reason", "DSR-21 access"]) == 0
    assert _identity("phone", "+79123456789") in capsys.readouterr().out


def test_officer_and_reason_are_required(
    vault_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--vault", str(vault_file), "lookup", "--pseudonym", "v1_x"]
    with pytest.raises(SystemExit) as info:
        vault.main(base)
    assert info.value.code == 2
    with pytest.raises(SystemExit):
        vault.main([*base, "--officer", "E"])
    capsys.readouterr()
    assert vault.main([*base, "--officer", "  ", "--reason", "DSR-22 access"]) == 1
    assert "--officer is required" in capsys.readouterr().err
    assert vault.main([*base, "--officer", "E", "--reason", " "]) == 1
    assert "--reason is required" in capsys.readouterr().err
    assert vault.main([*base, "--officer", "E", "--reason", "asked by ivan@example.com"]) == 1
    assert "must not contain an identifier" in capsys.readouterr().err
    # Refused before the vault was opened: nothing was read, so nothing to log.
    con = duckdb.connect(str(vault_file), read_only=True)
    tables = con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
    con.close()
    assert ("reidentification_log",) not in tables


def test_missing_vault_file(
    tmp_path: Path, master_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "none" / "vault.duckdb"
    argv = ["--vault", str(missing), "lookup", "--pseudonym", "v1_x"]
    assert vault.main([*argv, "--officer", "F", "--reason", "DSR-23 access"]) == 1
    err = capsys.readouterr().err
    assert "does not exist" in err
    assert "dbt build" in err
    assert not missing.exists()


def test_wrong_key_says_so_and_is_logged(
    vault_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    p = _identity("email", "ivan.petrov@example.com")
    monkeypatch.setenv(ENV_KEY, secrets.token_urlsafe(48))
    argv = ["--vault", str(vault_file), "lookup", "--pseudonym", p]
    assert vault.main([*argv, "--officer", "G", "--reason", "DSR-24 access"]) == 1
    captured = capsys.readouterr()
    assert "does not match the vault's key version v1" in captured.err
    assert "ivan" not in captured.out + captured.err
    entry = _log(vault_file)[-1]
    assert (entry["outcome"], entry["rows_returned"]) == ("key_mismatch", 0)


def test_missing_key_is_reported(
    vault_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(ENV_KEY)
    argv = ["--vault", str(vault_file), "lookup", "--pseudonym", "v1_x"]
    assert vault.main([*argv, "--officer", "H", "--reason", "DSR-25 access"]) == 1
    assert "CDP_MASTER_KEY is not set" in capsys.readouterr().err


def test_log_command(vault_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--vault", str(vault_file), "lookup", "--pseudonym", "v1_y"]
    vault.main([*argv, "--officer", "I. Officer", "--reason", "DSR-26 access"])
    capsys.readouterr()
    assert vault.main(["--vault", str(vault_file), "log"]) == 0
    assert "I. Officer" in capsys.readouterr().out


def test_module_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cdp.vault", "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0
    assert "lookup" in result.stdout
    assert "find" in result.stdout
