"""Adding a purpose is one seed row plus its translations (docs/decisions.md, 54).

A copy of the project gets one new marketing purpose, ``loyalty_news`` (consent, sent by
messenger), as a row of ``seeds/purposes.csv`` and its two texts in
``seeds/notice_translations.csv``; nothing else in the copy is edited. Consent events for it
are planted in a copy of the session build's landing zone (loaded now), the copy is rebuilt
with real dbt, and the purpose is followed wherever purposes are listed:

- the consent ledger and the person's permissions (int_consent__person_ledger, _purposes);
- the profile (dim_customer_profile.permitted_purposes);
- its audience (rpt_marketing_audiences): a messenger unsubscribe and a withdrawal keep two
  people out, and the opt-out test catches a planted unsubscriber;
- the purge: a messenger unsubscribe ends an old episode of the purpose (its grant is
  destroyed), an old grant in force is kept;
- the access export and the auditor pack (record of processing, Russian notice, compliance
  summary).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest

from cdp import access, catalogue, keys, normalise, pseudonym, stages
from cdp.dbt_invoke import DbtOutcome
from cdp.pack import pages, summary
from cdp.purge import load_purposes, purge
from conftest import ROOT, Workspace, copy_workspace, environment, query, run_ok, write

pytestmark = pytest.mark.dbt

PURPOSE = "loyalty_news"
PURPOSE_ROW = (
    f'{PURPOSE},Loyalty programme news,"Messages about the loyalty programme: points, '
    'levels and partner offers.",consent,true,"contact_identifiers;communication_activity",'
    "internal marketing team,152-FZ art. 6 p. 1(1); GDPR art. 6(1)(a),messenger,customers\n"
)
TRANSLATION_ROWS = (
    f"purpose_name,{PURPOSE},Новости программы лояльности\n"
    f"purpose_description,{PURPOSE},"
    '"Сообщения о программе лояльности: баллы, уровни и предложения партнёров."\n'  # noqa: RUF001
)
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
NOW = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)


@dataclass
class Added:
    """The rebuilt copy: its project, workspace, and who was planted as what."""

    project: Path
    workspace: Workspace
    raw_ids: dict[str, str]  # role -> raw customer id
    persons: dict[str, str]  # role -> person_key

    @property
    def seeds(self) -> Path:
        return self.project / "seeds"

    def dbt(self, *args: str) -> DbtOutcome:
        root = self.workspace.root
        extra = ["--target-path", str(root / "target"), "--log-path", str(root / "logs")]
        with environment(self.workspace.env):
            return stages.run(list(args), extra=extra, project_dir=str(self.project))


def copy_project(dest: Path) -> Path:
    """The project's dbt files under ``dest``, and one purpose added to its seeds."""
    dest.mkdir(parents=True)
    for name in PROJECT_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("target", "logs"))
        elif source.exists():
            shutil.copy2(source, dest / name)
    with (dest / "seeds" / "purposes.csv").open("a", encoding="utf-8") as handle:
        handle.write(PURPOSE_ROW)
    with (dest / "seeds" / "notice_translations.csv").open("a", encoding="utf-8") as handle:
        handle.write(TRANSLATION_ROWS)
    return dest


def customer_ids_of(workspace: Workspace, person_keys: list[str]) -> dict[str, str]:
    """person_key -> one raw customer id that belongs to that person alone."""
    master = keys.load_master_key({keys.ENV_KEY: workspace.key})
    identity = keys.pseudonym_key(master, "identity")
    raw_ids = [
        r[0] for r in query(workspace.raw_db, "select distinct customer_id from crm.customers")
    ]
    by_key = {
        pseudonym.pseudonym(
            identity,
            master.version,
            "customer_id",
            normalise.normalise_identifier("customer_id", c),
        ): c
        for c in raw_ids
        if c is not None and normalise.normalise_identifier("customer_id", c)
    }
    found: dict[str, str] = {}
    for person_key, subject_key in query(
        workspace.warehouse_db,
        """
        select person_key, subject_key from intermediate.int_consent__subject_persons
        where subject_id_type = 'customer_id' and is_unambiguous
        order by all
        """,
    ):
        if person_key in person_keys and subject_key in by_key and person_key not in found:
            found[person_key] = by_key[subject_key]
    return found


def consent_event(role: str, raw_id: str, action: str, captured: dt.datetime) -> tuple[Any, ...]:
    return (
        f"LOY-{role}-{action}",
        "customer_id",
        raw_id,
        PURPOSE,
        action,
        "web_form",
        "v1.0",
        f"WF-LOY-{role}-{action}",
        captured,
        NOW,
        "loyalty_1",
    )


def unsubscribe(role: str, raw_id: str, at: dt.datetime) -> tuple[Any, ...]:
    return (
        f"LOY-MSG-{role}",
        f"LOY-M-{role}",
        raw_id,
        None,
        "messenger",
        None,
        "unsubscribed",
        at,
        NOW,
        "loyalty_1",
    )


@pytest.fixture(scope="module")
def added(built: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Added]:
    """The copy with the new purpose, consent events for it planted, built with dbt.

    granted      grant 10 days ago: permitted, in the profile's list and the audience
    unsubscribed grant 10 days ago, messenger unsubscribe 5 days ago: withdrawn
    withdrawn    grant 10 days ago, withdrawal in the consent log 3 days ago
    closed_old   grant 5 years ago, messenger unsubscribe 4 years ago: for the purge
    open_old     grant 5 years ago, never withdrawn: for the purge
    The first three are profiled people with a phone contact of their own (messenger sends
    to a phone), so each could be in the audience. None of the five made a subject request:
    the generator gives some customers an erasure request, and the purge rightly destroys such a
    person's consent events whatever the purpose (the persons are taken in pseudonym order, so
    which ones depends on the run's random key; one CI run chose an erasure requester as
    open_old).
    """
    root = tmp_path_factory.mktemp("new_purpose")
    project = copy_project(root / "project")
    workspace = copy_workspace(built, root / "db")
    db = workspace.warehouse_db
    reachable = [
        r[0]
        for r in query(
            db,
            """
            select contacts.person_key
            from intermediate.int_consent__person_contacts as contacts
            inner join marts.dim_customer_profile as profile
                on contacts.person_key = profile.person_key
            where
                contacts.contact_id_type = 'phone'
                and contacts.person_key not in (
                    select person_key from intermediate.int_rights__request_persons
                )
            order by contacts.person_key
            """,
        )
    ]
    others = [
        r[0]
        for r in query(
            db,
            "select distinct person_key from intermediate.int_consent__subject_persons "
            "where subject_id_type = 'customer_id' and person_key not in "
            "(select person_key from intermediate.int_rights__request_persons) "
            "order by person_key",
        )
        if r[0] not in reachable
    ]
    ids = customer_ids_of(workspace, reachable + others)
    chosen = [p for p in reachable if p in ids][:3] + [p for p in others if p in ids][:2]
    assert len(chosen) == 5, "the session build should have people to plant the purpose on"
    roles = ("granted", "unsubscribed", "withdrawn", "closed_old", "open_old")
    persons = dict(zip(roles, chosen, strict=True))
    raw_ids = {role: ids[person] for role, person in persons.items()}
    days = dt.timedelta(days=1)
    events = [
        consent_event("granted", raw_ids["granted"], "grant", NOW - 10 * days),
        consent_event("unsubscribed", raw_ids["unsubscribed"], "grant", NOW - 10 * days),
        consent_event("withdrawn", raw_ids["withdrawn"], "grant", NOW - 10 * days),
        consent_event("withdrawn", raw_ids["withdrawn"], "withdraw", NOW - 3 * days),
        consent_event("closed_old", raw_ids["closed_old"], "grant", NOW - 5 * 365 * days),
        consent_event("open_old", raw_ids["open_old"], "grant", NOW - 5 * 365 * days),
    ]
    messages = [
        unsubscribe("unsubscribed", raw_ids["unsubscribed"], NOW - 5 * days),
        unsubscribe("closed_old", raw_ids["closed_old"], NOW - 4 * 365 * days),
    ]
    con = duckdb.connect(str(workspace.raw_db))
    try:
        con.executemany(
            "insert into privacy.consent_events values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", events
        )
        con.executemany(
            "insert into messaging.message_events values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", messages
        )
    finally:
        con.close()
    result = Added(project, workspace, raw_ids, persons)
    run_ok(result.dbt("build"))
    # A person's key is read again from the rebuilt identity map: the planted events can
    # change which of the person's identifiers anchors the key (an older grant makes their
    # customer id the one seen first).
    subject_keys = {role: workspace.record_key("customer_id", raw) for role, raw in raw_ids.items()}
    person_of = dict(
        query(
            db,
            "select subject_key, person_key from intermediate.int_consent__subject_persons "
            "where subject_id_type = 'customer_id' and subject_key in (select unnest(?))",
            [sorted(subject_keys.values())],
        )
    )
    result.persons = {role: person_of[key] for role, key in subject_keys.items()}
    yield result


def test_only_the_seed_rows_differ_from_the_project(added: Added) -> None:
    """The copy is the project plus one purpose row and its two texts: nothing else edited."""
    changed = []
    for path in sorted(p for p in added.project.rglob("*") if p.is_file()):
        relative = path.relative_to(added.project)
        original = ROOT / relative
        if not original.is_file() or original.read_bytes() != path.read_bytes():
            changed.append(relative.as_posix())
    assert changed == ["seeds/notice_translations.csv", "seeds/purposes.csv"]
    assert (added.seeds / "purposes.csv").read_text(encoding="utf-8").endswith(PURPOSE_ROW)
    assert PURPOSE in catalogue.consent_purpose_codes(added.seeds)
    assert PURPOSE not in catalogue.consent_purpose_codes()


def test_the_ledger_and_permissions_hold_the_new_purpose(added: Added) -> None:
    db = added.workspace.warehouse_db
    ledger = {
        person: (valid, origin)
        for person, valid, origin in query(
            db,
            "select person_key, is_valid_as_of, withdraw_origin "
            "from intermediate.int_consent__person_ledger where purpose_code = ?",
            [PURPOSE],
        )
    }
    p = added.persons
    assert ledger[p["granted"]] == (True, None)
    assert ledger[p["unsubscribed"]] == (False, "unsubscribe")
    assert ledger[p["withdrawn"]] == (False, "consent_log")
    assert ledger[p["open_old"]] == (True, None)
    permitted = dict(
        query(
            db,
            "select person_key, is_permitted from intermediate.int_consent__person_purposes "
            "where purpose_code = ?",
            [PURPOSE],
        )
    )
    assert permitted[p["granted"]] is True
    assert permitted[p["unsubscribed"]] is False
    assert permitted[p["withdrawn"]] is False


def test_the_profile_lists_the_new_purpose_for_the_permitted_only(added: Added) -> None:
    lists = dict(
        query(
            added.workspace.warehouse_db,
            "select person_key, permitted_purposes from marts.dim_customer_profile",
        )
    )
    p = added.persons
    assert PURPOSE in lists[p["granted"]]
    assert PURPOSE not in lists[p["unsubscribed"]]
    assert PURPOSE not in lists[p["withdrawn"]]
    holders = {person for person, codes in lists.items() if PURPOSE in codes}
    assert holders == {p["granted"]} | ({p["open_old"]} & set(lists))


def test_its_audience_is_sent_to_phones_and_leaves_out_who_opted_out(added: Added) -> None:
    db = added.workspace.warehouse_db
    audience = {
        person: contact_type
        for person, contact_type in query(
            db,
            "select person_key, contact_id_type from marts.rpt_marketing_audiences "
            "where purpose_code = ?",
            [PURPOSE],
        )
    }
    p = added.persons
    assert audience.get(p["granted"]) == "phone"
    assert p["unsubscribed"] not in audience
    assert p["withdrawn"] not in audience
    # The published audiences are unchanged in kind: no model of the purpose was written.
    assert not query(
        db,
        "select table_name from information_schema.tables where table_name like '%loyalty%'",
    )


def test_the_opt_out_test_covers_the_new_purpose(added: Added, tmp_path: Path) -> None:
    """The unsubscriber planted back into the purpose's audience fails the opt-out test."""
    workspace = copy_workspace(added.workspace, tmp_path / "db")
    dirty = Added(added.project, workspace, added.raw_ids, added.persons)
    write(
        workspace.warehouse_db,
        "insert into marts.rpt_marketing_audiences "
        "select purpose_code, ?, contact_id_type, contact_key, consent_valid_from - interval 1 day, "
        "consent_channel, policy_version, evidence_ref, last_activity_at, as_of "
        "from marts.rpt_marketing_audiences where purpose_code = ? and person_key = ?",
        [added.persons["unsubscribed"], PURPOSE, added.persons["granted"]],
    )
    outcome = dirty.dbt("test", "--select", "assert_audiences_honour_opt_outs")
    assert not outcome.success
    assert "assert_audiences_honour_opt_outs" in outcome.output


def test_the_access_export_lists_the_new_purpose(added: Added) -> None:
    ws = added.workspace
    data = access.export(
        id_type="customer_id",
        value=added.raw_ids["granted"],
        officer="A. Officer",
        reason="test: a new purpose in the access export",
        request_id="DSR-LOYALTY",
        raw_db=ws.raw_db,
        warehouse_db=ws.warehouse_db,
        vault_db=ws.vault_db,
        environ={keys.ENV_KEY: ws.key},
        seeds=added.seeds,
    ).data
    status = {row["purpose_code"]: row for row in data["consents"]["status"]}
    assert status[PURPOSE]["is_permitted"] is True
    listed = {row["purpose_code"]: row for row in data["purposes"]}
    assert listed[PURPOSE]["purpose_name"] == "Loyalty programme news"
    assert listed[PURPOSE]["is_permitted_now"] is True
    assert [c["data_category"] for c in listed[PURPOSE]["data_categories"]] == [
        "contact_identifiers",
        "communication_activity",
    ]
    assert {e["consent_event_id"] for e in data["consents"]["events"]} >= {"LOY-granted-grant"}
    assert data["profile"] is not None and PURPOSE in data["profile"]["permitted_purposes"]


def test_the_auditor_pack_lists_the_new_purpose(added: Added) -> None:
    cat = pages.Catalogue.load(added.seeds)
    target = next(
        t
        for t in stages.stage_target_paths(added.workspace.root / "target")
        if (t / "manifest.json").is_file()
    )
    manifest = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
    rows = {row[0].split(": ")[0]: row for row in pages.ropa_rows(cat, manifest)}
    row = rows[f"Loyalty programme news ({PURPOSE})"]
    assert "rpt_marketing_audiences" in row[-1]
    assert "contact_identifiers" in row[3]
    _html, notice_ru = pages.privacy_notice(cat, "ru")
    assert "Новости программы лояльности" in notice_ru
    ws = added.workspace
    _html, compliance = summary.compliance_summary(
        cat, None, ws.warehouse_db, ws.raw_db, ws.vault_db
    )
    line = next(line for line in compliance.splitlines() if line.startswith(f"| {PURPOSE} |"))
    persons, permitted = (int(cell) for cell in line.split("|")[2:4])
    assert persons >= 3 and permitted >= 1, line  # granted, unsubscribed, withdrawn (+ open_old)


def test_the_purge_ends_the_purposes_episodes_on_its_channel(added: Added, tmp_path: Path) -> None:
    """An old grant closed by a messenger unsubscribe is destroyed (the purge maps the channel
    to the purpose), an old grant still in force is kept (the purge knows the purpose). With
    the project's own catalogue, which lacks the purpose, the one in force would go too, as
    a row nothing can interpret: the catalogue passed in is what decides."""

    def purged(catalogue_purposes: Any, folder: str) -> set[str]:
        ws = copy_workspace(added.workspace, tmp_path / folder)
        purge(
            raw_db=ws.raw_db,
            warehouse_db=ws.warehouse_db,
            vault_db=ws.vault_db,
            as_of=NOW,
            operator="pytest",
            environ={keys.ENV_KEY: ws.key},
            purposes=catalogue_purposes,
        )
        return {
            r[0]
            for r in query(
                ws.raw_db,
                "select consent_event_id from privacy.consent_events where purpose_code = ?",
                [PURPOSE],
            )
        }

    planted = {
        r[0]
        for r in query(
            added.workspace.raw_db,
            "select consent_event_id from privacy.consent_events where purpose_code = ?",
            [PURPOSE],
        )
    }
    assert {"LOY-closed_old-grant", "LOY-open_old-grant"} <= planted
    kept = purged(load_purposes(added.seeds / "purposes.csv"), "with_purpose")
    assert "LOY-closed_old-grant" not in kept
    assert "LOY-open_old-grant" in kept
    assert {"LOY-granted-grant", "LOY-withdrawn-withdraw"} <= kept
    kept_without = purged(load_purposes(), "without_purpose")
    assert "LOY-open_old-grant" not in kept_without
