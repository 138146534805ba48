"""The command line: configuration errors are one clear line, before anything is written."""

from __future__ import annotations

import importlib
import importlib.util
import re
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from cdp import cli, contract
from conftest import ROOT, Workspace


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


# --------------------------------------------------------------------------- every tool a subcommand

NATIVE = ("demo", "check", "build")
# How each tool ran before it was a subcommand; these keep working.
OLD_ENTRY_POINTS = {
    "publish": "python -m cdp.publish",
    "generate": "scripts/generate_landing.py",
    "purge": "scripts/purge.py",
    "erase": "python -m cdp.erase",
    "access": "python -m cdp.access",
    "vault": "python -m cdp.vault",
    "keys": "python -m cdp.keys",
    "rotate": "python -m cdp.rotate",
    "evidence": "python -m cdp.evidence",
    "pack": "python -m cdp.pack",
    "gate": "python -m cdp.pack.gate",
    "quality": "python -m cdp.gx_checkpoint",
    "disclosure-audit": "python -m cdp.disclosure_audit",
    "spark-build": "python -m cdp.spark_stage",
    "spark-thrift": "python -m cdp.spark_thrift",
}


def test_cdp_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        cli.main(["--help"])
    assert stopped.value.code == 0
    listed = re.findall(r"^    ([a-z-]+)(?:\s|$)", capsys.readouterr().out, re.M)
    assert listed == [*NATIVE, *cli.DELEGATED]
    assert set(cli.DELEGATED) == set(OLD_ENTRY_POINTS)


def test_every_program_in_the_package_is_a_subcommand() -> None:
    """A module with a main() (a command-line tool) is reachable as `cdp NAME`."""
    package = ROOT / "src"
    programs = {
        ".".join(path.relative_to(package).with_suffix("").parts)
        for path in (package / "cdp").rglob("*.py")
        if re.search(r"^def main\(", path.read_text(encoding="utf-8"), re.M)
    }
    assert programs - {"cdp.cli"} == {module for module, _ in cli.DELEGATED.values()}


@pytest.mark.parametrize("command", [*NATIVE, *cli.DELEGATED])
def test_each_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`cdp NAME --help` exits 0 with the help of the program behind NAME, not cdp's own."""
    with pytest.raises(SystemExit) as stopped:
        cli.main([command, "--help"])
    assert stopped.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: cdp {command} ")
    assert "COMMAND" not in out.splitlines()[0]  # not cdp's top-level help


@pytest.mark.parametrize("command", sorted(cli.DELEGATED))
def test_a_command_hands_its_arguments_to_its_module(
    command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No second parser: the arguments reach the module's main() untouched, its code is cdp's."""
    module = importlib.import_module(cli.DELEGATED[command][0])
    seen: list[list[str] | None] = []

    def main(argv: list[str] | None = None) -> int:
        seen.append(argv)
        return 7

    monkeypatch.setattr(module, "main", main)
    assert cli.main([command, "--unknown-to-cdp", "x y"]) == 7
    assert seen == [["--unknown-to-cdp", "x y"]]


@pytest.mark.parametrize("command", sorted(OLD_ENTRY_POINTS))
def test_the_old_entry_points_remain(command: str) -> None:
    old, module = OLD_ENTRY_POINTS[command], cli.DELEGATED[command][0]
    if old.startswith("scripts/"):
        assert f"from {module} import main" in (ROOT / old).read_text(encoding="utf-8")
        return
    spec = importlib.util.find_spec(old.removeprefix("python -m "))
    assert spec is not None and spec.origin is not None
    if spec.submodule_search_locations:  # a package: its __main__ runs the module's main
        main_text = (Path(spec.origin).parent / "__main__.py").read_text(encoding="utf-8")
        assert f"from {module} import main" in main_text
    else:
        assert 'if __name__ == "__main__":' in Path(spec.origin).read_text(encoding="utf-8")


def test_the_installed_command_and_an_old_entry_point_start(tmp_path: Path) -> None:
    for command in (
        [str(Path(sys.executable).with_name("cdp")), "keys", "--help"],
        [sys.executable, "-m", "cdp.keys", "--help"],
    ):
        shown = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.startswith("usage: cdp keys ")


# --------------------------------------------------------------------------- cheap real runs


@pytest.fixture
def zone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every CDP_* path in tmp_path; no key configured."""
    for name, file in (
        ("CDP_RAW_DB", "raw.duckdb"),
        ("CDP_TRUTH_DB", "truth.duckdb"),
        ("CDP_WAREHOUSE_DB", "warehouse.duckdb"),
        ("CDP_VAULT_DB", "vault.duckdb"),
        ("CDP_PUBLISHED_DIR", "published"),
        ("CDP_EVIDENCE_DIR", "evidence"),
        ("CDP_QUALITY_REPORT_DIR", "quality"),
        ("CDP_DISCLOSURE_STATE_DIR", "disclosure"),
    ):
        monkeypatch.setenv(name, str(tmp_path / file))
    for name in ("CDP_MASTER_KEY", "CDP_MASTER_KEY_FILE", "CDP_KEY_VERSION"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_cdp_keys_writes_a_demo_key_and_checks_it(
    zone: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    target = zone / "secrets" / "master.key"
    assert cli.main(["keys", "demo-key", "--path", str(target)]) == 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    key = target.read_text(encoding="ascii").strip()
    assert len(key) >= 32
    monkeypatch.setenv("CDP_MASTER_KEY_FILE", str(target))
    assert cli.main(["keys", "check"]) == 0
    printed = capsys.readouterr()
    assert "OK: master key from CDP_MASTER_KEY_FILE" in printed.out
    assert key not in printed.out + printed.err


def test_cdp_generate_then_check_then_the_tools_that_need_a_build(
    zone: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A landing zone from `cdp generate`, checked; each tool that needs more says so, exit != 0."""
    argv = ["generate", "--customers", "12", "--seed", "3", "--reference-date", "2026-11-01"]
    assert cli.main([*argv, "--quiet"]) == 0
    assert "batch_0001: 12 new persons" in capsys.readouterr().out
    assert stat.S_IMODE((zone / "raw.duckdb").stat().st_mode) == 0o600
    key = secrets.token_urlsafe(48)
    monkeypatch.setenv("CDP_MASTER_KEY", key)
    assert cli.main(["check"]) == 0
    assert "configuration OK" in capsys.readouterr().err
    runs: list[tuple[list[str], int, str]] = [
        (["purge", "--dry-run"], 1, "purge: error: no warehouse at"),
        (["publish"], 1, "cdp publish: publishing failed: no warehouse at"),
        (["quality"], 2, "cdp quality: error: no published release at"),
        (["disclosure-audit"], 2, "cdp disclosure audit: error:"),
        (["gate", "--target-path", str(zone / "none")], 2, "manifest.json is missing"),
        (["rotate", "--to-version", "2", "--dry-run"], 0, "would rebuild under v2"),
        (["evidence", "verify"], 0, "cdp evidence: verified, 0 entries"),
        (["erase", "--check", "email", "a@b.example"], 2, "--officer is required"),
        (
            [
                *("access", "export", "--id-type", "email", "--value", "a@b.example"),
                *("--officer", "T", "--reason", "DSR-123", "--out", str(zone / "a.json")),
            ],
            1,
            "access: error: no warehouse at",
        ),
    ]
    for command, code, message in runs:
        monkeypatch.setenv("CDP_MASTER_KEY", key)  # a tool takes it out of the environment
        assert cli.main(command) == code, command
        printed = capsys.readouterr()
        assert message in printed.out + printed.err, (command, printed)
        assert "Traceback" not in printed.err
        assert key not in printed.out + printed.err
    assert not (zone / "warehouse.duckdb").exists()
    assert not (zone / "published").exists()
    assert not (zone / "a.json").exists()


def test_cdp_vault_verifies_an_empty_vault(
    zone: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    duckdb.connect(str(zone / "vault.duckdb")).close()
    monkeypatch.setenv("CDP_MASTER_KEY", secrets.token_urlsafe(48))
    assert cli.main(["vault", "verify"]) == 0
    assert "OK: every entry authentic, the log's chain intact" in capsys.readouterr().out
