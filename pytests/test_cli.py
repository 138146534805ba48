"""The command line: configuration errors are one clear line, before anything is written."""

from __future__ import annotations

import secrets
from pathlib import Path

import duckdb
import pytest

from cdp import cli, contract
from conftest import Workspace


@pytest.fixture
def key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDP_MASTER_KEY", secrets.token_urlsafe(48))
    monkeypatch.delenv("CDP_MASTER_KEY_FILE", raising=False)


def test_check_passes_on_a_generated_landing_zone(
    built: Workspace,
    key_env: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CDP_RAW_DB", str(built.raw_db))
    assert cli.main(["check"]) == 0
    assert "configuration OK" in capsys.readouterr().err


def test_check_names_a_missing_landing_zone(
    tmp_path: Path,
    key_env: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    missing = tmp_path / "nowhere" / "raw.duckdb"
    monkeypatch.setenv("CDP_RAW_DB", str(missing))
    assert cli.main(["check"]) == 2
    err = capsys.readouterr().err
    assert f"no landing zone at {missing}" in err
    assert "CDP_RAW_DB" in err
    assert not missing.exists()


def test_check_names_every_contract_difference(
    tmp_path: Path,
    key_env: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    raw = tmp_path / "raw.duckdb"
    con = duckdb.connect(str(raw))
    for statement in contract.create_all_sql():
        con.execute(statement)
    con.execute("alter table crm.customers drop column passport_number")
    con.execute("alter table web.events alter column event_at type varchar")
    con.execute("drop table privacy.subject_requests")
    con.execute("create table shop.returns (order_id varchar)")
    con.close()
    before = raw.read_bytes()
    monkeypatch.setenv("CDP_RAW_DB", str(raw))

    assert cli.main(["check"]) == 2
    err = capsys.readouterr().err
    assert "crm.customers: columns" in err
    assert "web.events.event_at: type VARCHAR, the contract says TIMESTAMP" in err
    assert "missing table privacy.subject_requests" in err
    assert "unexpected table shop.returns" in err
    assert raw.read_bytes() == before, "a check must not write to the landing zone"


def test_check_refuses_a_missing_key_first(
    built: Workspace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CDP_MASTER_KEY", raising=False)
    monkeypatch.delenv("CDP_MASTER_KEY_FILE", raising=False)
    monkeypatch.setenv("CDP_RAW_DB", str(built.raw_db))
    assert cli.main(["check"]) == 2
    assert "CDP_MASTER_KEY" in capsys.readouterr().err


def test_contract_checker_accepts_exactly_the_contract(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "raw.duckdb"))
    for statement in contract.create_all_sql():
        con.execute(statement)
    assert contract.check_database(con) == []
    con.close()


def test_build_passes_unknown_arguments_to_dbt(
    built: Workspace,
    key_env: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`cdp build --select ... --vars ...` reaches dbt; other commands refuse stray arguments."""
    for name, value in built.env.items():
        if name != "CDP_MASTER_KEY":
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("CDP_MASTER_KEY", built.key)
    assert (
        cli.main(["build", "--select", "city_regions", "--vars", "{default_phone_region: RU}"]) == 0
    )
    assert "dbt build --select city_regions --vars" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["check", "--select", "x"])


@pytest.mark.parametrize("command", ["access", "pack", "gate", "rotate"])
def test_delegated_commands_reach_their_programs(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`cdp NAME --help` is the help of the program behind NAME, not cdp's own."""
    from cdp import cli

    with pytest.raises(SystemExit) as stopped:
        cli.main([command, "--help"])
    assert stopped.value.code == 0
    out = capsys.readouterr().out
    program = cli.DELEGATED[command][0].removesuffix(".build")
    assert out.startswith(f"usage: python -m {program} ")
    assert "{access,pack,gate,rotate" not in out  # not cdp's top-level help
