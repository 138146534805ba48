"""The scan for unkeyed hashes sees every model, on a fresh build and on a partial one (decision 61).

In a copy of the project, one new privacy-stage model stores the plain sha256 of every
customer's normalised e-mail (a dictionary attack reverses it), and two more plain hashes: of
an e-mail that the landing zone holds only as a message recipient (its column is typed by the
channel) and of a phone it holds only as a consent subject (typed by a column of the row;
decision 106: the scan once gathered only the columns of one fixed type, and missed both; the
fixture checks that neither value is anywhere else in the landing zone). On
a fresh build (no warehouse, no vault) the scan ``assert_no_unkeyed_hash_of_identifiers`` must
fail, naming those three columns, and every other node must pass; ``cdp build --select`` of
that model alone must run the scan too. Without the planted model the same fresh build passes
it (the session's build, ``built``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest

from cdp import stages
from cdp.normalise import normalise_email, normalise_phone
from conftest import Workspace, copy_workspace
from test_new_table import copy_project

pytestmark = pytest.mark.dbt

PLANTED = "stg_crm__email_hashes"
#: Only a message recipient, and only a consent subject: no CRM or order row holds either.
RECIPIENT_ONLY = "Only.A.Recipient@Example.org"
SUBJECT_ONLY = "+7 (912) 000-11-22"
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
)
select customers.email_hash, recipients.recipient_hash, subjects.subject_hash
from customers cross join recipients cross join subjects
"""


def plant_landing_rows(raw_db: Path) -> None:
    """One message to ``RECIPIENT_ONLY`` and one consent grant by ``SUBJECT_ONLY``, copies of a
    landed row of the same batch. Neither is anywhere else in the landing zone, normalised or
    inside other text (a JSON document), so only the scan's recipient branch can find the one
    and only its subject branch the other."""
    email, phone = normalise_email(RECIPIENT_ONLY), normalise_phone(SUBJECT_ONLY)
    assert email is not None and phone is not None
    with duckdb.connect(str(raw_db)) as raw:
        text_columns = raw.execute(
            "select table_schema, table_name, column_name from information_schema.columns "
            "where data_type = 'VARCHAR' and table_schema not in ('information_schema', 'pg_catalog')"
        ).fetchall()
        assert len(text_columns) > 30
        for schema, table, column in text_columns:
            values = raw.execute(
                f'select distinct "{column}" from "{schema}"."{table}" '
                f"where \"{column}\" like '%@%' or regexp_matches(\"{column}\", '([0-9][^0-9]*){{10}}')"
            ).fetchall()
            for (value,) in values:
                where = (schema, table, column, value)
                assert normalise_email(value) != email and normalise_phone(value) != phone, where
                assert email.split("@")[0] not in value.lower(), where
                assert phone[-10:] not in re.sub(r"[^0-9]", "", value), where
        raw.execute(
            "insert into messaging.message_events by name select * replace ("
            "'planted-message-1' as message_event_id, 'email' as channel, "
            f"'{RECIPIENT_ONLY}' as recipient) "
            "from messaging.message_events where lower(trim(channel)) = 'email' limit 1"
        )
        raw.execute(
            "insert into privacy.consent_events by name select * replace ("
            "'planted-consent-1' as consent_event_id, 'phone' as subject_id_type, "
            f"'{SUBJECT_ONLY}' as subject_id) "
            "from privacy.consent_events where lower(trim(action)) = 'grant' limit 1"
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
    # The scan ran last and found exactly the planted model's three columns.
    assert [(r["status"], r["failures"]) for r in scan_results(target)] == [("fail", 3)]
    assert other_failures(target) == []
    assert f"{stages.HASH_SCAN}" in planted.output
    with duckdb.connect(str(planted.workspace.warehouse_db), read_only=True) as warehouse:
        hashes = warehouse.execute(
            f"select count(distinct email_hash), count(distinct recipient_hash), "
            f"count(distinct subject_hash) from staging.{PLANTED}"
        ).fetchone()
    assert hashes is not None and hashes[0] > 100 and hashes[1:] == (1, 1)


def test_a_partial_build_of_the_planted_model_runs_the_scan(planted: Planted) -> None:
    ws = planted.workspace
    result = ws.dbt("build", "--select", PLANTED, env={"DBT_PROJECT_DIR": str(planted.project)})
    assert not result.success
    target = ws.root / "target"
    assert [(r["status"], r["failures"]) for r in scan_results(target)] == [("fail", 3)]
    privacy = json.loads((target / "privacy" / "run_results.json").read_text(encoding="utf-8"))
    assert [r["unique_id"].rsplit(".", 1)[-1] for r in privacy["results"]] == [PLANTED]
