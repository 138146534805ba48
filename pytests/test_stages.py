"""The stages partition the project: every node runs in exactly one of them (decision 35)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cdp import dbt_invoke, stages
from conftest import SESSION_RUN_RESULTS, Workspace

pytestmark = pytest.mark.dbt

RESOURCE_TYPES = ["--resource-type", "model", "seed", "test", "unit_test", "snapshot"]


@pytest.fixture(scope="module")
def manifest() -> Any:
    parsed = dbt_invoke.invoke(["parse", "--target", "lint"], echo=False)
    assert parsed.success, parsed.output[-2000:]
    return parsed.result


def _ls(manifest: Any, *selection: str) -> set[str]:
    outcome = dbt_invoke.invoke(
        ["ls", "--quiet", "--output", "name", "--target", "lint", *selection, *RESOURCE_TYPES],
        echo=False,
        manifest=manifest,
    )
    assert outcome.success, outcome.output[-2000:]
    return {str(name) for name in outcome.result}


def test_every_node_is_in_exactly_one_stage(manifest: Any) -> None:
    everything = _ls(manifest, "--select", "fqn:*")
    members = {s.name: _ls(manifest, "--selector", s.selector) for s in stages.STAGES}
    for a in stages.STAGES:
        for b in stages.STAGES:
            if a.name < b.name:
                both = members[a.name] & members[b.name]
                assert both == set(), f"in both {a.name} and {b.name}: {sorted(both)[:5]}"
    union = set().union(*members.values())
    assert union == everything, f"in no stage: {sorted(everything - union)[:10]}"
    assert len(everything) > 300


def test_stage_contents(manifest: Any) -> None:
    privacy = _ls(manifest, "--selector", "privacy_stage")
    analytics = _ls(manifest, "--selector", "analytics_stage")
    vault = _ls(manifest, "--selector", "vault_stage")
    # Whatever reads the raw zone or derives keyed values runs with the key ...
    for name in ("stg_web__events_triaged", "int_identity_components", "purposes"):
        assert name in privacy
    assert {"vault_identifiers", "vault_customer_names"} <= vault
    assert "assert_no_unkeyed_hash_of_identifiers" in vault
    # ... and every mart, audience and BI model runs without it.
    for name in ("dim_customer_profile", "rpt_email_audience", "bi_customer_segments"):
        assert name in analytics
    # A test that reads a source runs where the raw zone is attached.
    assert not {n for n in analytics if n.startswith("accounts_for_every_raw_row")}


def test_keyed_macros_are_used_only_in_keyed_stages(manifest: Any) -> None:
    """A model of the analytics stage that calls a keyed function would fail at run time:
    caught here from the manifest, for every model, before any build."""
    analytics = _ls(manifest, "--selector", "analytics_stage")
    keyed = {
        "macro.cdp.pseudonymise",
        "macro.cdp.vault_seal",
        "macro.cdp.key_version",
        "macro.cdp.normalise_email",
        "macro.cdp.normalise_phone",
        "macro.cdp.normalise_identifier",
    }
    offenders = [
        node.name
        for node in manifest.nodes.values()
        if node.resource_type == "model"
        and node.name in analytics
        and keyed & set(node.depends_on.macros)
    ]
    assert offenders == []


def test_no_analytics_model_inlines_a_privacy_stage_model(manifest: Any) -> None:
    """An ephemeral model is compiled into its consumers: one of the privacy stage inlined
    into an analytics model would carry keyed calls (and raw reads) into the analytics stage."""
    analytics = _ls(manifest, "--selector", "analytics_stage")
    ephemeral_elsewhere = {
        uid
        for uid, node in manifest.nodes.items()
        if node.resource_type == "model"
        and node.config.materialized == "ephemeral"
        and node.name not in analytics
    }
    offenders = [
        (node.name, sorted(ephemeral_elsewhere & set(node.depends_on.nodes)))
        for node in manifest.nodes.values()
        if node.resource_type == "model"
        and node.name in analytics
        and ephemeral_elsewhere & set(node.depends_on.nodes)
    ]
    assert offenders == []


def test_the_session_build_ran_every_unit_test(manifest: Any, built: Workspace) -> None:
    """The suite's other builds leave dbt's unit tests out (conftest.make_workspace): their
    outcome depends on the commit, not the data. The session build must have run every unit
    test the project declares, in whichever stage holds it, and each must have passed."""
    declared = set(manifest.unit_tests)
    assert len(declared) >= 10
    ran: dict[str, str] = {}
    # The session build's own copies: later tests' `dbt test` runs in this workspace overwrite
    # target/<stage>/run_results.json (the order xdist gives them decides which).
    record = built.root / SESSION_RUN_RESULTS
    for stage in stages.STAGES:
        run = json.loads((record / f"{stage.name}.json").read_text(encoding="utf-8"))
        for result in run["results"]:
            if str(result["unique_id"]).startswith("unit_test."):
                ran[result["unique_id"]] = result["status"]
    assert ran == dict.fromkeys(declared, "pass")
