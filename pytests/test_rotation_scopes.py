"""Key rotation re-keys the purge's kept consent scopes (docs/decisions.md, 74), as the attack.

A person the purge splits (a customer and a cookie tied only by a login the purge destroys)
whose withdrawal, made through the customer id, reaches the cookie only through the scope the
purge kept. A rotation rebuilds every pseudonym under a new key version; the kept scope is in
the raw zone. Against the planted weak configuration (the same rotation without re-keying the
scopes, i.e. before decision 74) the cookie gets its consent back; against the product it does
not. Real landing zone, real dbt builds, a real purge.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from cdp import keys, preflight, rotate, rotate_scopes
from cdp import vault as vault_tool
from cdp.as_of import parse_as_of
from cdp.purge import purge
from conftest import (
    Workspace,
    copy_workspace,
    generate_landing,
    make_workspace,
    query,
    run_ok,
    write,
)
from test_purge import (
    PURGE_AS_OF,
    SPLIT_BATCH,
    SPLIT_COOKIE,
    SPLIT_CUSTOMER,
    SPLIT_PURPOSE,
    permitted_identifiers,
    person_of,
    plant_split_person,
)

pytestmark = pytest.mark.dbt

VARS = ["--vars", "{as_of: '" + PURGE_AS_OF + "'}"]
# Seeds, staging (every pseudonym and the vault) and the consent models with their parents.
SELECT = [
    "--select",
    "path:seeds path:models/staging +path:models/intermediate/consent",
    "--resource-type",
    "seed",
    "--resource-type",
    "model",
    *VARS,
]


def _dbt_paths(ws: Workspace) -> list[str]:
    return ["--target-path", str(ws.root / "target"), "--log-path", str(ws.root / "logs")]


def _key(ws: Workspace, id_type: str, value: str, version: str) -> str:
    return ws.identifier_key(id_type, value, version)


def _scope_versions(raw_db: Path) -> set[str]:
    rows = query(
        raw_db,
        "select distinct regexp_extract(member_key, '^v([0-9]+)_', 1) from audit.consent_scopes "
        "union select distinct unnest(regexp_extract_all(event_id, 'v([0-9]+)_[0-9a-f]{64}', 1)) "
        "from audit.consent_scopes",
    )
    return {str(r[0]) for r in rows}


def _members(raw_db: Path) -> set[str]:
    return {
        str(r[0]) for r in query(raw_db, "select distinct member_key from audit.consent_scopes")
    }


def _vault_keys(vault_db: Path) -> set[str]:
    return {str(r[0]) for r in query(vault_db, "select pseudonym from main.vault_identifiers")}


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """A small landing zone with the planted split person, built, purged as of PURGE_AS_OF."""
    ws = make_workspace(tmp_path_factory.mktemp("rotate-scopes"))
    generate_landing(ws.raw_db, ws.truth_db, customers=60)
    plant_split_person(ws)
    run_ok(ws.dbt("build", *SELECT))
    purge(
        raw_db=ws.raw_db,
        warehouse_db=ws.warehouse_db,
        as_of=parse_as_of(PURGE_AS_OF),
        operator="pytest",
        environ={"CDP_MASTER_KEY": ws.key},
    )
    run_ok(ws.dbt("build", *SELECT))
    yield ws


def _rotate(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch, *, rekey: bool
) -> rotate.RotationReport:
    for name, value in ws.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CDP_KEY_VERSION", raising=False)
    report = rotate.rotate("2", [*SELECT, *_dbt_paths(ws)], rekey=rekey)
    monkeypatch.setenv("CDP_MASTER_KEY", ws.key)  # the rotation took it out of the environment
    return report


def test_rotation_keeps_the_withdrawal_on_the_split_off_cookie(
    split: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    customer_v1 = _key(split, "customer_id", SPLIT_CUSTOMER, "1")
    cookie_v1 = _key(split, "anonymous_id", SPLIT_COOKIE, "1")
    # Before the rotation: the purge destroyed the login, the graph split the person, and the
    # withdrawal reaches the cookie through the kept scope only.
    assert query(
        split.raw_db, "select count(*) from web.events where _batch_id = ?", [SPLIT_BATCH]
    )[0] == (0,)
    assert person_of(split.warehouse_db, cookie_v1)
    assert person_of(split.warehouse_db, customer_v1).isdisjoint(
        person_of(split.warehouse_db, cookie_v1)
    )
    assert (cookie_v1, SPLIT_PURPOSE) not in permitted_identifiers(split.warehouse_db)
    assert {
        r[0]
        for r in query(
            split.raw_db,
            "select member_key from audit.consent_scopes where scope_kind = 'withdrawal' "
            "and purpose_code = ?",
            [SPLIT_PURPOSE],
        )
    } >= {customer_v1, cookie_v1}
    assert _scope_versions(split.raw_db) == {"1"}

    weak = copy_workspace(split, tmp_path / "weak")
    product = copy_workspace(split, tmp_path / "product")
    customer_v2 = _key(product, "customer_id", SPLIT_CUSTOMER, "2")
    cookie_v2 = _key(product, "anonymous_id", SPLIT_COOKIE, "2")

    # A rotation without re-keying the scopes: the preflight refuses its rebuild, since the
    # scopes would stay at v1 under a v2 build (decision 84)...
    with pytest.raises(rotate.RotationError, match="failed"):
        _rotate(weak, monkeypatch, rekey=False)
    # ...so the planted weak configuration is that rotation with the preflight check taken out
    # too, as the product was before decisions 74 and 84.
    with monkeypatch.context() as patch:
        patch.setattr(preflight, "check_scope_key_version", lambda *_args: None)
        report = _rotate(weak, monkeypatch, rekey=False)
    assert report.vault_versions == ["v2"] and not report.ok
    # Its verification sees the stale scopes (in the raw zone and staging's copy of them).
    assert set(report.old_pseudonyms_left) == {
        "raw:audit.consent_scopes.event_id",
        "raw:audit.consent_scopes.member_key",
        "warehouse:staging.stg_rights__consent_scopes.event_id",
        "warehouse:staging.stg_rights__consent_scopes.member_key",
    }
    assert person_of(weak.warehouse_db, cookie_v2), "the cookie is still held, under v2"
    assert (cookie_v2, SPLIT_PURPOSE) in permitted_identifiers(weak.warehouse_db), (
        "without re-keyed scopes the withdrawal no longer reaches the cookie: consent comes back"
    )

    # Members the vault does not hold (their every raw row was purged) reach nobody already.
    unheld = _members(product.raw_db) - _vault_keys(product.vault_db)
    subjects = {
        str(r[0])
        for r in query(
            split.warehouse_db, "select subject_key from intermediate.int_consent__subject_persons"
        )
    }
    assert unheld.isdisjoint(subjects)

    # The product: the scopes are re-keyed before the rebuild; the withdrawal still reaches.
    report = _rotate(product, monkeypatch, rekey=True)
    assert report.ok, report
    scopes = report.scopes
    assert scopes.rekeyed > 0 and scopes.rekeyed + scopes.deleted == scopes.rows
    assert (scopes.members_unmapped, scopes.events_unmapped) == (len(unheld), 0)
    assert _scope_versions(product.raw_db) == {"2"}
    assert rotate.old_pseudonyms(product.raw_db, "2", only=rotate.RAW_REKEYED) == {}
    assert person_of(product.warehouse_db, cookie_v2)
    assert person_of(product.warehouse_db, customer_v2).isdisjoint(
        person_of(product.warehouse_db, cookie_v2)
    ), "still split after the rotation"
    assert (cookie_v2, SPLIT_PURPOSE) not in permitted_identifiers(product.warehouse_db)
    # The ledger as a whole: the rotation gives no identifier's consent back (same pairs,
    # re-keyed), and it takes none away either.
    assert len(permitted_identifiers(product.warehouse_db)) == len(
        permitted_identifiers(split.warehouse_db)
    )
    assert len(permitted_identifiers(weak.warehouse_db)) > len(
        permitted_identifiers(split.warehouse_db)
    )


def test_an_unmappable_member_is_deleted_with_a_record(
    split: Workspace,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A member whose identifier left the vault can reach nobody after a rotation: its row is
    deleted in the re-keying transaction, with a destruction record; the rest is re-keyed,
    and re-keying again changes nothing."""
    ws = copy_workspace(split, tmp_path / "unmappable")
    cookie_v1 = _key(ws, "anonymous_id", SPLIT_COOKIE, "1")
    held = query(
        ws.raw_db, "select count(*) from audit.consent_scopes where member_key = ?", [cookie_v1]
    )[0][0]
    assert held > 0
    rows = query(ws.raw_db, "select count(*) from audit.consent_scopes")[0][0]
    master = keys.load_master_key({keys.ENV_KEY: ws.key})
    base = rotate_scopes.rekey_scopes(ws.raw_db, ws.vault_db, master, "2", dry_run=True)
    write(ws.vault_db, "delete from main.vault_identifiers where pseudonym = ?", [cookie_v1])

    shapes = query(
        ws.raw_db,
        "select scope_kind, regexp_replace(event_id, 'v[0-9]+_[0-9a-f]{64}', 'K'), count(*) "
        "from audit.consent_scopes group by all order by all",
    )
    # Every kind of event token is here to be re-keyed: consent events and requests (plain
    # keys), objections (a request key inside) and message opt-outs (a message event key).
    kinds = {shape.split(":")[0] if ":" in shape else "key" for _, shape, _ in shapes}
    assert {"key", "objection", "unsubscribe", "complaint"} <= kinds, shapes
    assert {kind for kind, _, _ in shapes} >= {"withdrawal", "restriction"}
    # The command line says what it would do, and writes nothing.
    for name, value in ws.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CDP_KEY_VERSION", raising=False)
    assert rotate.main(["--to-version", "2", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert (
        f"would re-key consent scopes: {rows} row(s), {rows - base.deleted - held} re-keyed" in out
    )
    assert SPLIT_COOKIE not in out and ws.key not in out
    monkeypatch.setenv("CDP_MASTER_KEY", ws.key)

    dry = rotate_scopes.rekey_scopes(ws.raw_db, ws.vault_db, master, "2", dry_run=True)
    assert (dry.rows, dry.deleted, dry.members_unmapped) == (
        rows,
        base.deleted + held,
        base.members_unmapped + 1,
    )
    assert _scope_versions(ws.raw_db) == {"1"}, "a dry run writes nothing"

    done = rotate_scopes.rekey_scopes(ws.raw_db, ws.vault_db, master, "2", operator="pytest")
    assert (done.deleted, done.rekeyed) == (dry.deleted, rows - dry.deleted)
    assert _scope_versions(ws.raw_db) == {"2"}
    assert cookie_v1 not in _members(ws.raw_db)
    assert query(ws.raw_db, "select count(*) from audit.consent_scopes")[0][0] == done.rekeyed
    records = query(
        ws.raw_db,
        "select source_table, reason, method, row_count, subject_key, tool "
        "from audit.destruction_log where reason = ?",
        [rotate_scopes.UNMAPPABLE_REASON],
    )
    assert records == [
        (
            "audit.consent_scopes",
            "key_rotation_unmappable",
            "delete_rows",
            done.deleted,
            None,
            "cdp.rotate",
        )
    ]
    again = rotate_scopes.rekey_scopes(ws.raw_db, ws.vault_db, master, "2")
    assert (again.rekeyed, again.deleted, again.current) == (0, 0, done.rekeyed)


def test_a_tampered_vault_entry_stops_the_rekeying(split: Workspace, tmp_path: Path) -> None:
    """A vault entry moved to another member's row does not answer with another identifier:
    the re-keying stops before it writes anything."""
    ws = copy_workspace(split, tmp_path / "tampered")
    members = sorted(_members(ws.raw_db) & _vault_keys(ws.vault_db))[:2]
    assert len(members) == 2
    write(
        ws.vault_db,
        "update main.vault_identifiers set pseudonym = ? where pseudonym = ?",
        [members[1] + "x", members[1]],
    )
    write(
        ws.vault_db,
        "update main.vault_identifiers set pseudonym = ? where pseudonym = ?",
        [members[1], members[0]],
    )
    before = shutil.copyfile(ws.raw_db, tmp_path / "raw-before.duckdb")
    master = keys.load_master_key({keys.ENV_KEY: ws.key})
    with pytest.raises(vault_tool.VaultTampered, match="does not authenticate for its row"):
        rotate_scopes.rekey_scopes(ws.raw_db, ws.vault_db, master, "2")
    assert query(ws.raw_db, "select * from audit.consent_scopes order by all") == query(
        before, "select * from audit.consent_scopes order by all"
    )


def test_a_rotation_whose_rebuild_failed_is_finished_before_any_other_build(
    split: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rotation re-keys the scopes, then rebuilds; if the rebuild fails, the scopes are at
    the new version and the warehouse and vault at the old one (decision 84). A plain build
    under the old version would then read scopes that match nothing: the attack, against the
    planted weak preflight (the check taken out), gives the split-off cookie its consent back.
    The product refuses that build, writing nothing, until the rotation is run again."""
    ws = copy_workspace(split, tmp_path / "failed")
    cookie_v1 = _key(ws, "anonymous_id", SPLIT_COOKIE, "1")
    assert (cookie_v1, SPLIT_PURPOSE) not in permitted_identifiers(ws.warehouse_db)
    for name, value in ws.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CDP_KEY_VERSION", raising=False)
    # A rebuild that fails after the re-keying: an as_of the preflight refuses.
    failing = [*SELECT[: -len(VARS)], "--vars", "{as_of: 'not-a-date'}", *_dbt_paths(ws)]
    with pytest.raises(rotate.RotationError, match="failed"):
        rotate.rotate("2", failing)
    monkeypatch.setenv("CDP_MASTER_KEY", ws.key)
    assert _scope_versions(ws.raw_db) == {"2"}
    assert rotate.vault_versions(ws.vault_db) == ["v1"]

    # The product: a plain build under v1 is refused before anything is written.
    before = (ws.warehouse_db.read_bytes(), ws.vault_db.read_bytes())
    refused = ws.dbt("build", *SELECT)
    assert not refused.success
    assert "did not finish its rebuild" in refused.output
    assert "cdp rotate --to-version 2" in refused.output
    assert ws.key not in refused.output
    assert (ws.warehouse_db.read_bytes(), ws.vault_db.read_bytes()) == before

    # The planted weak configuration: the same build without the check gives consent back.
    with monkeypatch.context() as weak:
        weak.setattr(preflight, "check_scope_key_version", lambda *_args: None)
        run_ok(ws.dbt("build", *SELECT))
    assert (cookie_v1, SPLIT_PURPOSE) in permitted_identifiers(ws.warehouse_db), (
        "scopes at v2 under a v1 build match no identifier: the withdrawal no longer reaches"
    )

    # Running the rotation again finishes it: the withdrawal reaches the cookie again.
    report = _rotate(ws, monkeypatch, rekey=True)
    assert report.ok, report
    cookie_v2 = _key(ws, "anonymous_id", SPLIT_COOKIE, "2")
    assert person_of(ws.warehouse_db, cookie_v2)
    assert (cookie_v2, SPLIT_PURPOSE) not in permitted_identifiers(ws.warehouse_db)


def test_a_new_key_version_without_the_rotation_is_refused(
    split: Workspace, tmp_path: Path
) -> None:
    """A new CDP_KEY_VERSION built with a plain `--full-refresh` (the vault's own check allows
    a full rebuild) would leave the scopes at the old version: refused, naming `cdp rotate`."""
    ws = copy_workspace(split, tmp_path / "manual")
    before = ws.warehouse_db.read_bytes()
    refused = ws.dbt("build", "--full-refresh", *SELECT, env={"CDP_KEY_VERSION": "2"})
    assert not refused.success
    assert "kept consent scopes" in refused.output
    assert "Run `cdp rotate --to-version 2`" in refused.output
    assert ws.warehouse_db.read_bytes() == before
