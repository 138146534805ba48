"""Key rotation through real builds: a new key version re-pseudonymises, the vault follows,
old pseudonyms stop resolving (``python -m cdp.rotate``)."""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path

import duckdb
import pytest

from cdp import rotate
from cdp import vault as vault_tool
from cdp.keys import load_master_key
from cdp.normalise import normalise_email
from conftest import Workspace, generate_landing, make_workspace

pytestmark = pytest.mark.dbt

# Seeds and staging (which holds every kind of pseudonym and the vault), models only.
SELECT = [
    "--select",
    "path:seeds path:models/staging",
    "--resource-type",
    "seed",
    "--resource-type",
    "model",
    "--vars",
    '{as_of: "2026-11-01"}',
]
OFFICER = ["--officer", "test", "--reason", "request RQ-7 rotation check"]


def _dbt_paths(ws: Workspace) -> list[str]:
    return ["--target-path", str(ws.root / "target"), "--log-path", str(ws.root / "logs")]


def _an_email(raw: Path) -> str:
    con = duckdb.connect(str(raw), read_only=True)
    try:
        emails = [r[0] for r in con.execute("select email from crm.customers").fetchall()]
    finally:
        con.close()
    return str(next(e for e in emails if normalise_email(e)))


def _held(ws: Workspace, pseudonym: str) -> int:
    con = duckdb.connect(str(ws.vault_db), read_only=True)
    try:
        rows = con.execute(
            "select count(*) from main.vault_identifiers where pseudonym = ?", [pseudonym]
        ).fetchall()
    finally:
        con.close()
    return int(rows[0][0])


def _vault_find(ws: Workspace, email: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()  # drop what dbt printed before
    code = vault_tool.main(
        ["--vault", str(ws.vault_db), "find", "--id-type", "email", "--value", email, *OFFICER]
    )
    return code, capsys.readouterr().out.splitlines()[0]


def test_rotation_repseudonymises_and_old_pseudonyms_stop_resolving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = make_workspace(tmp_path)
    generate_landing(ws.raw_db, ws.truth_db, customers=60)
    for name, value in ws.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CDP_KEY_VERSION", raising=False)
    first = ws.dbt("build", *SELECT)
    assert first.success, first.output[-4000:]
    assert rotate.vault_versions(ws.vault_db) == ["v1"]

    email = _an_email(ws.raw_db)
    code, old = _vault_find(ws, email, capsys)
    assert code == 0 and old.startswith("v1_")
    assert _held(ws, old) > 0

    assert rotate.main(["--to-version", "2", *SELECT, *_dbt_paths(ws)]) == 0
    assert "v1 -> v2; no older pseudonym left" in capsys.readouterr().out.splitlines()[-1]
    # The rotation took the key out of its process's environment (cdp.keys.take_master_key);
    # the officer's next command is a new process with the key in its environment again.
    monkeypatch.setenv("CDP_MASTER_KEY", ws.key)

    # The vault follows: only v2 entries, and it opens with the v2 keys.
    assert rotate.vault_versions(ws.vault_db) == ["v2"]
    monkeypatch.setenv("CDP_KEY_VERSION", "2")
    code, new = _vault_find(ws, email, capsys)
    assert code == 0 and new.startswith("v2_") and new[3:] != old[3:]
    # Old pseudonyms stop resolving: the vault holds nothing under them, and the officer's
    # tool configured with the old version finds nothing; the new one resolves.
    assert _held(ws, old) == 0 and _held(ws, new) > 0
    monkeypatch.setenv("CDP_KEY_VERSION", "1")
    assert _vault_find(ws, email, capsys) == (3, old)
    monkeypatch.setenv("CDP_KEY_VERSION", "2")
    # No string column of the warehouse or the vault holds a v1 pseudonym any more.
    assert rotate.old_pseudonyms(ws.warehouse_db, "2") == {}
    assert rotate.old_pseudonyms(ws.vault_db, "2") == {}
    # ...except the re-identification log, which keeps what was asked under the old key.
    kept = rotate.old_pseudonyms(ws.vault_db, "2", exclude=frozenset())
    assert list(kept) == ["main.reidentification_log.pseudonym"]
    con = duckdb.connect(str(ws.warehouse_db), read_only=True)
    keys = con.execute(
        "select count(*), count(*) filter (where customer_key like 'v2\\_%' escape '\\') "
        "from staging.stg_crm__customers_triaged where customer_key is not null"
    ).fetchall()
    con.close()
    assert keys[0][0] > 0 and keys[0][0] == keys[0][1]

    # The check can fail: a planted v1 pseudonym is found.
    planted = tmp_path / "planted.duckdb"
    shutil.copy(ws.warehouse_db, planted)
    con = duckdb.connect(str(planted))
    con.execute("create table main.leftover as select ? as note", [f"kept {old} here"])
    con.close()
    assert rotate.old_pseudonyms(planted, "2") == {"main.leftover.note": 1}

    # A build may not mix generations: an older version, or a newer one without a full
    # rebuild, is refused before anything is written.
    stamp = ws.warehouse_db.stat().st_mtime_ns
    back = ws.dbt("build", *SELECT, env={"CDP_KEY_VERSION": "1"})
    assert not back.success and "was built with key version v2" in back.output
    ahead = ws.dbt("build", *SELECT, env={"CDP_KEY_VERSION": "3"})
    assert not ahead.success and "needs a full rebuild" in ahead.output
    assert ws.warehouse_db.stat().st_mtime_ns == stamp

    # Going back, or rotating with a key that does not open the vault, is refused.
    assert rotate.main(["--to-version", "2", "--dry-run"]) == 1
    assert "rotate to a newer version" in capsys.readouterr().err
    monkeypatch.setenv("CDP_MASTER_KEY", secrets.token_urlsafe(48))
    assert rotate.main(["--to-version", "3", "--dry-run"]) == 1
    assert "does not open the vault" in capsys.readouterr().err
    assert load_master_key().version == "2"
