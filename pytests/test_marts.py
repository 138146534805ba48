"""The anonymised marts: contracts, k-anonymity, differencing, all on real dbt builds.

Reuses the session ``built`` warehouse (300 customers, k = 10). Tests that plant
a violation work on copies of its files, so the shared build stays intact.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb

from cdp import dbt_invoke
from cdp.dbt_invoke import DbtOutcome
from conftest import ROOT, Workspace, copy_workspace, environment

K = 10
BI_MARTS = (
    "bi_sales_by_region_month",
    "bi_customer_segments",
    "bi_campaign_performance",
    "bi_consent_coverage",
    "bi_cohort_retention",
)
# Marts with total rows: (table, group columns, people column).
WITH_TOTALS = (
    ("bi_sales_by_region_month", ("order_month",), "customer_count"),
    ("bi_customer_segments", ("age_band", "region"), "customer_count"),
    ("bi_consent_coverage", ("purpose_code", "coverage_month"), "persons_in_force"),
)


def dbt_in(env: dict[str, str], root: Path, *args: str, project_dir: Path = ROOT) -> DbtOutcome:
    """dbt in-process against ``env`` (restored afterwards), artefacts under ``root``."""
    with environment(env):
        return dbt_invoke.invoke(
            args,
            project_dir=str(project_dir),
            extra=["--target-path", str(root / "target"), "--log-path", str(root / "logs")],
            echo=False,
        )


def test_bi_marts_are_public_with_enforced_contracts(built: Workspace) -> None:
    manifest = json.loads((built.root / "target" / "manifest.json").read_text())
    marts = {
        node["name"]: node
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["schema"] == "bi"
    }
    assert set(marts) == set(BI_MARTS)
    for name, node in marts.items():
        assert node["access"] == "public", name
        assert node["config"]["contract"]["enforced"], name
        assert all(column.get("data_type") for column in node["columns"].values()), name
    exposed = {
        dep.split(".")[-1]
        for node in manifest["exposures"].values()
        for dep in node["depends_on"]["nodes"]
    }
    assert exposed == set(BI_MARTS)


def test_built_marts_hold_no_person_and_no_small_cell(built: Workspace) -> None:
    con = duckdb.connect(str(built.warehouse_db), read_only=True)
    try:
        for mart in BI_MARTS:
            columns = [row[0] for row in con.execute(f"describe bi.{mart}").fetchall()]
            assert not [
                c
                for c in columns
                if c.endswith("_key") or ("person" in c and c != "persons_in_force")
            ]
            values = con.execute(
                f"select count(*), count(*) filter (where not is_suppressed) from bi.{mart}"
            ).fetchall()
            assert values[0][0] > 0, f"{mart} is empty on the 300-customer build"
        small = con.execute(
            "select count(*) from bi.bi_sales_by_region_month where not is_suppressed and customer_count < ?",
            [K],
        ).fetchall()[0][0]
        assert small == 0
    finally:
        con.close()


def test_k_anonymity_test_fails_on_a_group_below_k(built: Workspace, tmp_path: Path) -> None:
    env = copy_workspace(built, tmp_path).env
    con = duckdb.connect(env["CDP_WAREHOUSE_DB"])
    try:
        con.execute(
            "insert into bi.bi_sales_by_region_month "
            "select date '1999-01-01', 'Planted Oblast', false, 3, 4, 100.00, 25.00, false, max(as_of) "
            "from bi.bi_sales_by_region_month"
        )
    finally:
        con.close()
    outcome = dbt_in(
        env, tmp_path, "test", "--select", "bi_sales_by_region_month,test_name:k_anonymity"
    )
    assert not outcome.success
    assert "k_anonymity_bi_sales_by_region_month_customer_count" in outcome.output
    assert "Got 1 result" in outcome.output


def _differencing(
    con: duckdb.DuckDBPyConnection, table: str, groups: tuple[str, ...], people: str
) -> list[tuple[object, ...]]:
    """Groups where total minus visible cells gives a suppressed cell away (one cell, or 1..k-1 people)."""
    keys = ", ".join(groups)
    joined = " and ".join(f"cells.{g} = totals.{g}" for g in groups)
    return con.execute(
        f"""
        with cells as (
            select {keys}, count(*) filter (where is_suppressed) as suppressed,
                coalesce(sum({people}) filter (where not is_suppressed), 0) as visible
            from {table} where not is_total group by {keys}
        ),
        totals as (select {keys}, {people} as total from {table} where is_total and not is_suppressed)
        select cells.*, totals.total from cells inner join totals on {joined}
        where cells.suppressed = 1 or totals.total - cells.visible between 1 and {K - 1}
        """
    ).fetchall()


def test_differencing_against_totals_recovers_no_suppressed_cell(
    built: Workspace, tmp_path: Path
) -> None:
    # Exact numbers (the perturbation off, as only a test may build them): secondary suppression
    # alone must already stop the subtraction within a mart. The product's perturbed release is
    # audited across marts by cdp.disclosure_audit (test_disclosure.py).
    env = copy_workspace(built, tmp_path).env
    outcome = dbt_in(
        env,
        tmp_path,
        "run",
        "--select",
        *(table for table, _, _ in WITH_TOTALS),
        "--vars",
        json.dumps({"disclosure_weaken": ["no_perturbation"]}),
    )
    assert outcome.success, outcome.output[-3000:]
    con = duckdb.connect(env["CDP_WAREHOUSE_DB"])
    try:
        suppressed = 0
        for table, groups, people in WITH_TOTALS:
            assert _differencing(con, f"bi.{table}", groups, people) == []
            suppressed += con.execute(
                f"select count(*) from bi.{table} where is_suppressed and not is_total"
            ).fetchall()[0][0]
        assert suppressed > 0, "nothing was suppressed: the attack would prove nothing"
        # The same attack on primary suppression alone (cells below k hidden, totals shown; two age groups) does
        # recover cells from the same data: so the attack works, and secondary suppression stops it.
        con.execute(
            """
            create temp table naive as
            with cells as (
                select date_trunc('month', event_at) as order_month,
                        case when age_band in ('25-34', '35-44', '45-54') then 'core' else 'rest' end as region,
                        count(distinct person_key) as people
                from intermediate.int_bi__analytics_events
                where event_source = 'order' and event_type not in ('cancelled', 'returned')
                group by all
            )
            select order_month, region, false as is_total, people < 10 as is_suppressed,
                case when people >= 10 then people end as people
            from cells
            union all
            select order_month, '(all)', true, sum(people) < 10, case when sum(people) >= 10 then sum(people) end
            from cells group by order_month
            """
        )
        assert _differencing(con, "naive", ("order_month",), "people") != []
    finally:
        con.close()


def test_adding_a_column_without_updating_the_contract_fails_the_build(
    built: Workspace, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    for name in ("dbt_project.yml", "profiles.yml"):
        shutil.copy2(ROOT / name, project / name)
    for folder in ("models", "macros", "tests", "seeds", "docs"):
        if (ROOT / folder).exists():
            shutil.copytree(ROOT / folder, project / folder)
    model = project / "models" / "marts" / "bi" / "bi_sales_by_region_month.sql"
    text = model.read_text()
    assert "cast(is_suppressed as boolean) as is_suppressed," in text
    model.write_text(
        text.replace(
            "cast(is_suppressed as boolean) as is_suppressed,",
            "cast(is_suppressed as boolean) as is_suppressed,\n        cast(1 as integer) as sneaked_in,",
        )
    )
    env = copy_workspace(built, tmp_path / "db").env
    outcome = dbt_in(
        env, tmp_path, "run", "--select", "bi_sales_by_region_month", project_dir=project
    )
    assert not outcome.success
    assert "sneaked_in" in outcome.output and "contract" in outcome.output.lower()
    # The unchanged model in the same copy builds: the failure is the contract's doing.
    outcome = dbt_in(env, tmp_path, "run", "--select", "bi_sales_by_region_month")
    assert outcome.success, outcome.output[-3000:]


def test_the_removed_laplace_mode_is_refused_and_the_ledger_records_the_perturbation(
    built: Workspace, tmp_path: Path
) -> None:
    env = copy_workspace(built, tmp_path).env
    outcome = dbt_in(
        env,
        tmp_path,
        "run",
        "--select",
        "bi_sales_by_region_month",
        "--vars",
        json.dumps({"dp_epsilon": 0.5}),
    )
    assert not outcome.success
    assert "dp_epsilon was removed" in outcome.output
    con = duckdb.connect(str(built.warehouse_db), read_only=True)
    try:
        rows = con.execute(
            "select distinct perturbation, perturbation_max_count_noise, suppression_protection, weakened "
            "from audit.audit_bi_disclosure_ledger"
        ).fetchall()
        assert rows == [("cell_key", 2, 3, "")]
        low = con.execute(
            "select count(*) from bi.bi_sales_by_region_month where not is_suppressed and customer_count < ?",
            [K],
        ).fetchall()[0][0]
        assert low == 0
    finally:
        con.close()
