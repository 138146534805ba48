"""The scan for unkeyed hashes sees every model, on a fresh build and on a partial one (decision 61).

In a copy of the project, one new privacy-stage model stores the plain sha256 of every
customer's normalised e-mail (a dictionary attack reverses it), and five more plain hashes, each
of a value the landing zone holds in one row only, which one branch of the scan's gathering
alone reads (decision 106; the scan once gathered only the columns of one fixed type, and
missed all five): a message recipient on the e-mail channel, a consent subject, a subject
request's subject (vault: false), a rectification's new value (a JSON field) and a recipient
on a channel the seed does not know. The fixture checks that none of them is anywhere else in
the landing zone. On a fresh build (no warehouse, no vault) the scan
``assert_no_unkeyed_hash_of_identifiers`` must fail, naming those six columns, and every other
node must pass; ``cdp build --select`` of that model alone must run the scan too. Without the
planted model the same fresh build passes it (the session's build, ``built``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest

from cdp import stages
from cdp.normalise import _strings_of, normalise_email, normalise_phone
from conftest import Workspace, copy_workspace
from test_new_table import copy_project

pytestmark = pytest.mark.dbt

PLANTED = "stg_crm__email_hashes"
#: Each value is in one landing row only, which only one branch of the scan's gathering reads:
#: a message recipient on the e-mail channel, a consent subject, the subject of a subject
#: request (vault: false), a rectification's new value (a JSON field), and a recipient on a
#: channel the channels seed does not know.
RECIPIENT_ONLY = "Only.A.Recipient@Example.org"
SUBJECT_ONLY = "+7 (912) 000-11-22"
REQUEST_SUBJECT_ONLY = "+7 912 000 33 44"
RECTIFIED_ONLY = "Only.A.Rectification@Example.org"
UNKNOWN_CHANNEL_ONLY = "8 912 000 55 66"
PLANTED_COLUMNS = 6
PLANTED_MODEL = f"""\
{{{{ config(materialized='table') }}}}
-- A leak: plain hashes of normalised e-mails and phones, reversible by dictionary.
with customers as (
    select sha256({{{{ normalise_email('email') }}}}) as email_hash
    from {{{{ source('crm', 'customers') }}}}
    where email is not null
),
recipients as (
    select md5({{{{ normalise_email('recipient') }}}}) as recipient_hash
    from {{{{ source('messaging', 'message_events') }}}}
    where recipient = '{RECIPIENT_ONLY}'
),
subjects as (
    -- as a dialled number, without its +
    select sha256(ltrim({{{{ normalise_phone('subject_id') }}}}, '+')) as subject_hash
    from {{{{ source('privacy', 'consent_events') }}}}
    where subject_id = '{SUBJECT_ONLY}'
),
requests as (
    select
        md5({{{{ normalise_phone('subject_id') }}}}) as request_subject_hash,
        sha256({{{{ normalise_email("json_extract_string(details, '$.value')") }}}})
            as rectified_hash
    from {{{{ source('privacy', 'subject_requests') }}}}
    where subject_id = '{REQUEST_SUBJECT_ONLY}'
),
unknown_channel as (
    select sha256({{{{ normalise_phone('recipient') }}}}) as unknown_channel_hash
    from {{{{ source('messaging', 'message_events') }}}}
    where recipient = '{UNKNOWN_CHANNEL_ONLY}'
)
select
    customers.email_hash,
    recipients.recipient_hash,
    subjects.subject_hash,
    requests.request_subject_hash,
    requests.rectified_hash,
    unknown_channel.unknown_channel_hash
from customers
cross join recipients
cross join subjects
cross join requests
cross join unknown_channel
"""


def _digits(text: str) -> str:
    """Every decimal digit of ``text``, any script, as ASCII (phonenumbers reads them all)."""
    return "".join(str(int(ch)) for ch in text if ch.isdecimal())


def _texts(value: str) -> list[str]:
    """``value``, and every string inside it when it is a JSON document."""
    try:
        return [value, *_strings_of(json.loads(value))]
    except ValueError:
        return [value]


def plant_landing_rows(raw_db: Path) -> None:
    """The five values above, each in one new row copied from a landed row of the same batch.
    None is anywhere else in the landing zone (every text value, and every string inside a
    JSON document, normalised, or holding the address's mailbox or the number's digits), so
    only the branch of the scan meant for it can find it."""
    emails = [e for v in (RECIPIENT_ONLY, RECTIFIED_ONLY) if (e := normalise_email(v))]
    phones = [
        p
        for v in (SUBJECT_ONLY, REQUEST_SUBJECT_ONLY, UNKNOWN_CHANNEL_ONLY)
        if (p := normalise_phone(v))
    ]
    assert len(emails) == 2 and len(phones) == 3
    with duckdb.connect(str(raw_db)) as raw:
        text_columns = raw.execute(
            "select table_schema, table_name, column_name from information_schema.columns "
            "where data_type = 'VARCHAR' and table_schema not in ('information_schema', 'pg_catalog')"
        ).fetchall()
        assert len(text_columns) > 30
        seen = 0
        for schema, table, column in text_columns:
            quoted = column.replace('"', '""')
            values = raw.execute(
                f'select distinct "{quoted}" from "{schema}"."{table}" where "{quoted}" is not null'
            ).fetchall()
            for (value,) in values:
                seen += 1
                for text in _texts(value):
                    where = (schema, table, column, value)
                    assert normalise_email(text) not in emails, where
                    assert normalise_phone(text) not in phones, where
                    assert not any(e.split("@")[0] in text.lower() for e in emails), where
                    assert not any(p[-10:] in _digits(text) for p in phones), where
        assert seen > 10_000
        raw.execute(
            "insert into messaging.message_events by name select * replace ("
            "'planted-message-1' as message_event_id, 'email' as channel, "
            f"'{RECIPIENT_ONLY}' as recipient) "
            "from messaging.message_events where lower(trim(channel)) = 'email' limit 1"
        )
        raw.execute(
            "insert into messaging.message_events by name select * replace ("
            "'planted-message-2' as message_event_id, 'whatsapp' as channel, "
            f"'{UNKNOWN_CHANNEL_ONLY}' as recipient) "
            "from messaging.message_events where lower(trim(channel)) = 'sms' limit 1"
        )
        raw.execute(
            "insert into privacy.consent_events by name select * replace ("
            "'planted-consent-1' as consent_event_id, 'phone' as subject_id_type, "
            f"'{SUBJECT_ONLY}' as subject_id) "
            "from privacy.consent_events where lower(trim(action)) = 'grant' limit 1"
        )
        details = json.dumps({"field": "email", "value": RECTIFIED_ONLY})
        raw.execute(
            "insert into privacy.subject_requests by name select * replace ("
            "'planted-request-1' as request_id, 'phone' as subject_id_type, "
            f"'{REQUEST_SUBJECT_ONLY}' as subject_id, ? as details) "
            "from privacy.subject_requests where lower(trim(request_type)) = 'rectification' "
            "order by received_at desc limit 1",
            [details],
        )


def scan_results(target: Path) -> list[dict[str, Any]]:
    """The scan's results in the vault stage's run_results.json of ``target``."""
    results = json.loads((target / "vault" / "run_results.json").read_text(encoding="utf-8"))
    return [r for r in results["results"] if r["unique_id"].endswith(f".{stages.HASH_SCAN}")]


def other_failures(target: Path) -> list[str]:
    failed = []
    for stage_dir in (target / "privacy", target, target / "vault"):
        results = json.loads((stage_dir / "run_results.json").read_text(encoding="utf-8"))
        failed += [
            r["unique_id"]
            for r in results["results"]
            if r["status"] in ("error", "fail", "skipped")
            and not r["unique_id"].endswith(f".{stages.HASH_SCAN}")
        ]
    return failed


@dataclass
class Planted:
    workspace: Workspace
    project: Path
    output: str
    success: bool


@pytest.fixture(scope="module")
def planted(built: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Planted]:
    root = tmp_path_factory.mktemp("hash_scan")
    project = copy_project(root / "project")
    (project / "models" / "staging" / "crm" / f"{PLANTED}.sql").write_text(
        PLANTED_MODEL, encoding="utf-8"
    )
    ws = copy_workspace(built, root / "workspace")
    ws.warehouse_db.unlink()  # a fresh build: no warehouse, no vault
    ws.vault_db.unlink()
    plant_landing_rows(ws.raw_db)
    result = ws.dbt("build", env={"DBT_PROJECT_DIR": str(project)})
    yield Planted(ws, project, result.output, result.success)


def test_the_fresh_build_passes_the_scan_without_the_planted_model(built: Workspace) -> None:
    results = scan_results(built.root / "target")
    assert [(r["status"], r["failures"]) for r in results] == [("pass", 0)]


def test_a_planted_unkeyed_hash_fails_the_fresh_build(planted: Planted) -> None:
    assert not planted.success
    target = planted.workspace.root / "target"
    # The scan ran last and found exactly the planted model's six columns.
    assert [(r["status"], r["failures"]) for r in scan_results(target)] == [
        ("fail", PLANTED_COLUMNS)
    ]
    assert other_failures(target) == []
    assert f"{stages.HASH_SCAN}" in planted.output
    with duckdb.connect(str(planted.workspace.warehouse_db), read_only=True) as warehouse:
        hashes = warehouse.execute(
            "select count(distinct email_hash), count(distinct recipient_hash), "
            "count(distinct subject_hash), count(distinct request_subject_hash), "
            "count(distinct rectified_hash), count(distinct unknown_channel_hash) "
            f"from staging.{PLANTED}"
        ).fetchone()
    assert hashes is not None and hashes[0] > 100 and hashes[1:] == (1,) * (PLANTED_COLUMNS - 1)


def test_a_partial_build_of_the_planted_model_runs_the_scan(planted: Planted) -> None:
    ws = planted.workspace
    result = ws.dbt("build", "--select", PLANTED, env={"DBT_PROJECT_DIR": str(planted.project)})
    assert not result.success
    target = ws.root / "target"
    assert [(r["status"], r["failures"]) for r in scan_results(target)] == [
        ("fail", PLANTED_COLUMNS)
    ]
    privacy = json.loads((target / "privacy" / "run_results.json").read_text(encoding="utf-8"))
    assert [r["unique_id"].rsplit(".", 1)[-1] for r in privacy["results"]] == [PLANTED]
