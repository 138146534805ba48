"""The privacy gate runs on every test run: computed lineage against zones and declared meta."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from cdp import dbt_invoke
from cdp.pack import gate
from conftest import ROOT, Workspace

PLANTED_SQL = """
with customers as (

    select * from {{ source('crm', 'customers') }}

),

final as (

    select
        customers.customer_id as planted_id,
        lower(customers.email) as contact_email
    from customers

)

select * from final
"""
PLANTED_BI_SQL = """
select
    profile.person_key,
    profile.region
from {{ ref('dim_customer_profile') }} as profile
"""
PLANTED_YML = """
version: 2
models:
  - name: planted_meta
    columns:
      - name: customer_key
        config: {meta: {pii: none}}
"""
PLANTED_META_SQL = """
select customers.customer_key from {{ ref('stg_crm__customers') }} as customers
"""
# The weak configuration of decision 50: raw source ids in a mart, one of them excused.
PLANTED_RAW_KEY_SQL = """
select
    events.event_id,
    orders.order_id as excused_order_id
from {{ source('web', 'events') }} as events
inner join {{ source('shop', 'orders') }} as orders
    on events.customer_id = orders.customer_id
"""
PLANTED_BI_RAW_KEY_SQL = """
select orders.order_id from {{ source('shop', 'orders') }} as orders
"""
PLANTED_RAW_KEY_YML = """
version: 2
models:
  - name: planted_raw_key
    columns:
      - name: excused_order_id
        config: {meta: {pii: direct, transformation: normalised, raw_key_exception: planted}}
  - name: planted_bi_raw_key
    columns:
      - name: order_id
        config: {meta: {pii: direct, transformation: normalised, raw_key_exception: planted}}
"""


@pytest.fixture(scope="module")
def documented(built: Workspace) -> Path:
    target = built.root / "target"
    if not (target / "static_index.html").is_file():
        result = built.dbt("docs", "generate", "--static", "--select", "fqn:*")
        assert result.success, result.output[-3000:]
    return target


@pytest.mark.dbt
def test_gate_passes_on_the_built_project(documented: Path) -> None:
    _project, findings = gate.run(documented)
    report = gate.report(findings)
    print(report)
    assert not gate.failures(findings), report


@pytest.fixture(scope="module")
def planted(
    built: Workspace, documented: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """A copy of the project with three bad models, compiled (only they) next to the real target."""
    copy = tmp_path_factory.mktemp("planted") / "project"
    shutil.copytree(
        ROOT,
        copy,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", "target", "logs", "data", "artifacts", ".*cache*", "__pycache__"
        ),
    )
    (copy / "models" / "marts" / "planted").mkdir()
    (copy / "models" / "marts" / "planted" / "planted_email.sql").write_text(PLANTED_SQL)
    (copy / "models" / "marts" / "planted" / "planted_meta.sql").write_text(PLANTED_META_SQL)
    (copy / "models" / "marts" / "planted" / "_planted.yml").write_text(PLANTED_YML)
    (copy / "models" / "marts" / "planted" / "planted_raw_key.sql").write_text(PLANTED_RAW_KEY_SQL)
    (copy / "models" / "marts" / "planted" / "_planted_raw_key.yml").write_text(PLANTED_RAW_KEY_YML)
    (copy / "models" / "marts" / "bi").mkdir(exist_ok=True)
    (copy / "models" / "marts" / "bi" / "planted_bi.sql").write_text(PLANTED_BI_SQL)
    (copy / "models" / "marts" / "bi" / "planted_bi_raw_key.sql").write_text(PLANTED_BI_RAW_KEY_SQL)
    target = copy / "target"
    shutil.copytree(documented / "compiled", target / "compiled")
    shutil.copyfile(documented / "catalog.json", target / "catalog.json")
    saved = {name: os.environ.get(name) for name in built.env}
    os.environ.update(built.env)
    try:
        outcome = dbt_invoke.invoke(
            [
                "compile",
                "--select",
                "planted_email",
                "planted_bi",
                "planted_meta",
                "planted_raw_key",
                "planted_bi_raw_key",
            ],
            project_dir=str(copy),
            extra=["--target-path", str(target), "--log-path", str(copy / "logs")],
            echo=False,
        )
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    assert outcome.success, outcome.output[-3000:]
    yield target


@pytest.mark.dbt
def test_gate_fails_on_a_raw_email_in_a_new_column(planted: Path) -> None:
    _project, findings = gate.run(planted)
    failed = gate.failures(findings)
    report = gate.report(findings)
    leak = [
        f for f in failed if f.rule == "untransformed_identifier" and f.model == "planted_email"
    ]
    assert {f.column for f in leak} == {"contact_email", "planted_id"}, report
    email = next(f for f in leak if f.column == "contact_email")
    assert email.path == ("crm.customers.email", "planted_email.contact_email")
    assert email.file == "models/marts/planted/planted_email.sql"
    assert "planted_email.contact_email" in report
    assert "crm.customers.email -> planted_email.contact_email" in report


@pytest.mark.dbt
def test_gate_treats_a_raw_source_id_as_linkable(planted: Path) -> None:
    """A raw event or order id in a mart or a BI model fails (decision 50); a declared
    exception excuses a raw key in the warehouse only, never in the published zone."""
    _project, findings = gate.run(planted)
    report = gate.report(findings)
    rules: dict[tuple[str, str], set[str]] = {}
    for finding in gate.failures(findings):
        rules.setdefault((finding.model, finding.column), set()).add(finding.rule)
    assert "untransformed_identifier" in rules.get(("planted_raw_key", "event_id"), set()), report
    assert "raw key (linkable to its raw row) web.events.event_id reaches" in report
    assert ("planted_raw_key", "excused_order_id") not in rules, report
    assert rules.get(("planted_bi_raw_key", "order_id")) == {
        "untransformed_identifier",
        "stale_raw_key_exception",
    }, report


@pytest.mark.dbt
def test_gate_fails_on_a_pseudonym_in_the_published_zone(planted: Path) -> None:
    _project, findings = gate.run(planted)
    published = [f for f in gate.failures(findings) if f.rule == "published_identifier"]
    assert {(f.model, f.column) for f in published} == {("planted_bi", "person_key")}
    assert published[0].path[-1] == "planted_bi.person_key"


@pytest.mark.dbt
def test_gate_fails_when_declared_meta_disagrees(planted: Path) -> None:
    _project, findings = gate.run(planted)
    wrong = {(f.rule, f.model, f.column) for f in gate.failures(findings)}
    assert ("meta_pii_understated", "planted_meta", "customer_key") in wrong
    assert ("meta_transformation_missing", "planted_meta", "customer_key") in wrong


@pytest.mark.dbt
def test_command_line_exit_codes(documented: Path, planted: Path) -> None:
    assert gate.main(["--target-path", str(documented)]) == 0
    assert gate.main(["--target-path", str(planted)]) == 1
    assert gate.main(["--target-path", str(planted / "missing")]) == 2


def test_a_waiver_that_matches_nothing_fails() -> None:
    finding = gate.Finding("untransformed_identifier", "m", "c", "f.sql", "leak", "fix")
    kept = gate.apply_waivers([finding], {("meta_pii_understated", "x", "y"): "old"})
    assert {f.rule for f in gate.failures(kept)} == {"untransformed_identifier", "stale_waiver"}
    waived = gate.apply_waivers([finding], {("untransformed_identifier", "m", "c"): "owner told"})
    assert gate.failures(waived) == []
