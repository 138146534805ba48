"""The sources' metadata is the one place that says what each landing table holds (decision 57).

The coverage check (``cdp.sources.problems``) fails when a landing table or personal column
lacks what the product needs to treat it: a staging model, a data category with a retention
period, a retention rule the purge has, an erasure method, an identifier by which the erasure
and the access export find whose rows they are. Every tool derives its tables from the same
metadata, so what the check passes, they cover.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cdp import access, contract, purge, sources
from conftest import ROOT

GOOD_TABLE = """\
version: 2
sources:
  - name: loyalty
    database: raw
    schema: loyalty
    config: {meta: {landing: true}}
    tables:
      - name: point_events
        config:
          meta: {data_category: site_activity, record_time: "coalesce(earned_at, _loaded_at)"}
        columns:
          - {name: point_event_id, data_type: VARCHAR, config: {meta: {pii: direct, raw_key: true}}}
          - {name: member_email, data_type: VARCHAR, config: {meta: {pii: direct, identifier_type: email}}}
          - {name: earned_at, data_type: TIMESTAMP, config: {meta: {pii: none}}}
          - {name: _loaded_at, data_type: TIMESTAMP, config: {meta: {pii: none}}}
          - {name: _batch_id, data_type: VARCHAR, config: {meta: {pii: none}}}
"""

# (what is planted: text replaced in GOOD_TABLE, or a missing staging model) -> the problem named
DEFECTS = {
    "no_category": (
        ("data_category: site_activity, ", ""),
        "loyalty.point_events: no data_category",
    ),
    "unknown_category": (
        ("data_category: site_activity", "data_category: loyalty_points"),
        "not in seeds/data_categories.csv",
    ),
    "unknown_rule": (
        ('record_time: "coalesce', 'retention_rule: forever, record_time: "coalesce'),
        "retention_rule 'forever'",
    ),
    "no_record_time": (
        (', record_time: "coalesce(earned_at, _loaded_at)"', ""),
        "the record_time rule needs a record_time",
    ),
    "unknown_erasure": (
        ("data_category: site_activity,", "data_category: site_activity, erasure: shred,"),
        "erasure method 'shred'",
    ),
    "no_identifier": (
        ("identifier_type: email", "free_text: false"),
        "personal columns but no identifier column",
    ),
    "unknown_identifier": (
        ("identifier_type: email", "identifier_type: passport"),
        "identifier_type 'passport'",
    ),
    "no_type": (
        ("{name: earned_at, data_type: TIMESTAMP,", "{name: earned_at,"),
        "earned_at: no data_type",
    ),
    "no_pii_level": (
        (
            "{name: earned_at, data_type: TIMESTAMP, config: {meta: {pii: none}}}",
            "{name: earned_at, data_type: TIMESTAMP}",
        ),
        "earned_at: pii is ''",
    ),
    "no_staging_model": (None, "no staging model stg_loyalty__point_events_triaged"),
}


def project_with(tmp_path: Path, yml: str, *, staging_model: bool = True) -> Path:
    """A copy of the project's models and seeds with one more landing table."""
    root = tmp_path / "project"
    shutil.copytree(ROOT / "models", root / "models")
    shutil.copytree(ROOT / "seeds", root / "seeds")
    folder = root / "models" / "staging" / "loyalty"
    folder.mkdir()
    (folder / "_loyalty__sources.yml").write_text(yml, encoding="utf-8")
    if staging_model:
        (folder / "stg_loyalty__point_events_triaged.sql").write_text(
            "{{ stage_landing_table('loyalty', 'point_events', key='point_event_id') }}\n",
            encoding="utf-8",
        )
    return root


def test_the_projects_metadata_is_complete() -> None:
    assert sources.problems() == []


def test_the_contract_is_the_metadata() -> None:
    tables = sources.landing_tables()
    assert {t.qualified for t in tables} == {
        f"{s}.{t}" for s in contract.TABLES for t in contract.TABLES[s]
    }
    for table in tables:
        assert contract.TABLES[table.schema][table.name] == table.contract_columns
        assert [c.name for c in table.columns][-2:] == ["_loaded_at", "_batch_id"]


def test_a_complete_new_table_passes(tmp_path: Path) -> None:
    root = project_with(tmp_path, GOOD_TABLE)
    assert sources.problems(root) == []
    table = sources.table("loyalty.point_events", root)
    assert table.identifier_columns == (("member_email", "email"),)
    assert table.retention_rule == "record_time" and table.erasure == "delete_rows"


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_a_planted_table_lacking_a_rule_is_named(tmp_path: Path, defect: str) -> None:
    change, expected = DEFECTS[defect]
    yml = GOOD_TABLE if change is None else GOOD_TABLE.replace(*change)
    assert change is None or yml != GOOD_TABLE, "the planted change must apply"
    root = project_with(tmp_path, yml, staging_model=change is not None)
    found = sources.problems(root)
    assert any(expected in line for line in found), found


def test_every_tool_covers_every_landing_table() -> None:
    """What the check passes, the tools cover: the purge has each table's rule, the access
    export finds each table's rows (by identifier, by typed subject, or with its parent)."""
    exported = access.raw_identifier_columns()
    for table in sources.landing_tables():
        assert table.retention_rule in sources.RETENTION_RULES
        assert (
            table.qualified in exported
            or table.typed_columns
            or (table.parent is not None and table.parent[0] in exported)
        ), table.qualified
    assert set(purge.NAMED_RULE_TABLES) <= set(sources.RETENTION_RULES)
