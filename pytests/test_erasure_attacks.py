"""Attacks on `cdp erase` (decisions 47-49): forms, places and sequences the erasure misses.

Built on test_erasure.py's person (planted in every raw table and free-text field)
and its byte-and-live-data scan. Each attack plants one more trace of the same
person, written the way a real landing zone writes it, in a row that is not hers
by any identifier column (another logged-in visitor's device, another customer's
request or consent, her own order's line), with a unique tag so each finding is
its own test. A real finding is marked ``xfail(strict=True)``: the suite stays
green and the finding executable; when the product is fixed the xfail turns red
and the marker is removed.

Fixtures (module scope, each one ``cdp build`` + ``cdp erase`` on a copy of the
session build):

- ``attacked``: the person + every attack row; one erasure; then the scan.
- ``interrupted``: the person; an erasure that fails at step 3 (the vault rewrite)
  after the purge committed, then ``cdp erase`` run again to completion.
- the re-delivery and ``--check`` tests reuse ``attacked``'s workspace last.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import io
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pytest

from cdp import erase
from conftest import Workspace, copy_workspace, environment, run_dbt
from test_erasure import (
    CUSTOMER_ID,
    EMAIL,
    ERASURE_REQUEST,
    _cdp_env,
    _insert,
    _live_strings,
    needles,
    person_pseudonyms,
    plant,
    plant_truth,
    scan,
    vault_rows_held,
)

pytestmark = pytest.mark.slow  # a long module: xdist starts it first (conftest)

ATTACK_BATCH = "erasure-attack"
ATTACK_LOADED_AT = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
EMAIL_LOWER = EMAIL.lower()
EMAIL_B64 = base64.urlsafe_b64encode(EMAIL_LOWER.encode()).decode().rstrip("=")

# attack id -> the exact free text planted (the needle is its lower case)
WEB_SEARCHES = {
    "a1_endash_phone": "перезвоните +7 (912) 555\u201301\u201323",
    "a5_fullwidth_at": "zelda.obliviate\uff20example.org",
    "a16_surname_only": "obliviate family gift",
    "a23_slash_phone": "tel +7/912/555/01/23",
    "a25_00_prefix_phone": "call 0079125550123",
    "a26_card_spaced": "lost card LC ERASE 889977",
    # expected to hold (the purge matches these)
    "h17_surname_first_comma": "Obliviate, Zelda h17",
    "h27_customer_id_lower": "order of cust-erase-77001 h27",
}
WEB_PAGES = {
    "a2_email_pipe_separated": "https://shop.example/r?next=zelda.obliviate%40example.org%7Cpromo",
    "a3_email_triple_encoded": "https://shop.example/r?ref=zelda.obliviate%252540example.org",
    "a4_email_base64": f"https://shop.example/r?u={EMAIL_B64}",
    "a28_email_then_fragment": "https://mail.example/inbox/zelda.obliviate@example.org#a28",
}
WEB_REFERRERS = {
    "h19_referrer_email": "https://mail.example/?to=Zelda.Obliviate%40Example.org&h19=1",
}
WEB_PROPERTIES = {
    "h20_nested_json_array": '{"h20": [{"x": ["ZELDA.OBLIVIATE@EXAMPLE.ORG"]}]}',
    "h21_json_key": '{"Zelda.Obliviate@Example.org": true, "h21": 1}',
}
USER_AGENT_A6 = "Mozilla/5.0 MailApp/2.0 (account zelda.obliviate@example.org)"
SKU_A7 = "egift-zelda.obliviate@example.org"
PRODUCT_NAME_A9 = "Engraved mug: Zelda Obliviate"
EVIDENCE_A8 = "email-confirmation:zelda.obliviate@example.org:2026-10-01"
DETAILS_A11 = '{"field": "email", "value": "Zelda.Obliviate@Example.org"}'
PLUS_TAG_A14 = "zelda.obliviate+news@example.org"


def attack_needles() -> dict[str, bytes]:
    found = {
        **{k: v.lower().encode() for k, v in WEB_SEARCHES.items()},
        **{k: v.lower().encode() for k, v in WEB_PAGES.items()},
        **{k: v.lower().encode() for k, v in WEB_REFERRERS.items()},
        **{k: v.lower().encode() for k, v in WEB_PROPERTIES.items()},
        "a6_user_agent": USER_AGENT_A6.lower().encode(),
        "a7_product_sku": SKU_A7.lower().encode(),
        "a8_consent_evidence_ref": EVIDENCE_A8.lower().encode(),
        "a9_order_item_name": PRODUCT_NAME_A9.lower().encode(),
        "a11_other_persons_request_details": DETAILS_A11.lower().encode(),
        "a14_plus_tag_recipient": PLUS_TAG_A14.encode(),
    }
    # base64 is case-sensitive: the scan lowers everything, so search the lowered form
    found["a4_email_base64"] = EMAIL_B64.lower().encode()
    return found


def plant_attacks(raw_db: Path, other_customer: str) -> None:
    con = duckdb.connect(str(raw_db))
    try:
        device = "dev-attack-other-4242"  # logs in as another customer: not the person's device
        at = dt.datetime(2026, 10, 11, 9, 0)
        web: list[dict[str, Any]] = [
            {"event_id": "ev-atk-login", "event_type": "login"},
        ]
        for tag, text in WEB_SEARCHES.items():
            web.append({"event_id": f"ev-atk-{tag}", "event_type": "search", "search_query": text})
        for tag, url in WEB_PAGES.items():
            web.append({"event_id": f"ev-atk-{tag}", "event_type": "page_view", "page_url": url})
        for tag, url in WEB_REFERRERS.items():
            web.append(
                {"event_id": f"ev-atk-{tag}", "event_type": "page_view", "referrer_url": url}
            )
        for tag, props in WEB_PROPERTIES.items():
            web.append(
                {"event_id": f"ev-atk-{tag}", "event_type": "form_submit", "properties": props}
            )
        web.append(
            {
                "event_id": "ev-atk-a6_user_agent",
                "event_type": "page_view",
                "user_agent": USER_AGENT_A6,
            }
        )
        web.append(
            {
                "event_id": "ev-atk-a7_product_sku",
                "event_type": "product_view",
                "product_sku": SKU_A7,
            }
        )
        for number, row in enumerate(web):
            row.update(
                anonymous_id=device,
                customer_id=other_customer,
                event_at=at + dt.timedelta(minutes=number),
                received_at=at + dt.timedelta(minutes=number, seconds=1),
                ip_address="10.9.8.7",
                _batch_id=ATTACK_BATCH,
                _loaded_at=ATTACK_LOADED_AT,
            )
            row.setdefault("user_agent", "Mozilla/5.0 (X11; Linux x86_64)")
            row.setdefault("page_url", "https://shop.example/p/2")
        _insert(con, "web.events", web)
        # her own order gets a personalised line (order lines are kept for accounting)
        _insert(
            con,
            "shop.order_items",
            [
                {
                    "order_id": "ORD-ERASE-1",
                    "line_number": 2,
                    "product_sku": "SKU-MUG-ENGRAVED",
                    "product_name": PRODUCT_NAME_A9,
                    "category": "home",
                    "quantity": 1,
                    "unit_price": 0,
                    "_batch_id": ATTACK_BATCH,
                    "_loaded_at": ATTACK_LOADED_AT,
                }
            ],
        )
        # another customer's consent whose evidence is her confirmation email
        _insert(
            con,
            "privacy.consent_events",
            [
                {
                    "consent_event_id": "ce-atk-a8",
                    "subject_id_type": "customer_id",
                    "subject_id": other_customer,
                    "purpose_code": "email_marketing",
                    "action": "grant",
                    "channel": "email_link",
                    "policy_version": "v3",
                    "evidence_ref": EVIDENCE_A8,
                    "captured_at": dt.datetime(2026, 10, 1, 12, 0),
                    "_batch_id": ATTACK_BATCH,
                    "_loaded_at": ATTACK_LOADED_AT,
                }
            ],
        )
        # another customer's (unverified) rectification naming her email
        _insert(
            con,
            "privacy.subject_requests",
            [
                {
                    "request_id": "DSR-ATK-A11",
                    "subject_id_type": "customer_id",
                    "subject_id": other_customer,
                    "request_type": "rectification",
                    "jurisdiction": "EU",
                    "received_at": dt.datetime(2026, 10, 7),
                    "details": DETAILS_A11,
                    "is_verified": False,
                    "_batch_id": ATTACK_BATCH,
                    "_loaded_at": ATTACK_LOADED_AT,
                }
            ],
        )
        messages = [
            # a12: a channel the recipient-type map does not know
            ("me-atk-a12", "e-mail", " Zelda.Obliviate@EXAMPLE.org", None),
            # h13: her address, other case and spacing, no customer id (should go)
            ("me-atk-h13", "email", f"  {EMAIL.upper()} ", None),
            # a14: her mailbox with a plus tag, no customer id
            ("me-atk-a14", "email", PLUS_TAG_A14, None),
        ]
        _insert(
            con,
            "messaging.message_events",
            [
                {
                    "message_event_id": mid,
                    "message_id": f"m-{mid}",
                    "customer_id": customer,
                    "recipient": recipient,
                    "channel": channel,
                    "campaign_id": "CMP-1",
                    "event_type": "delivered",
                    "event_at": dt.datetime(2026, 10, 2, 10, n),
                    "_batch_id": ATTACK_BATCH,
                    "_loaded_at": ATTACK_LOADED_AT,
                }
                for n, (mid, channel, recipient, customer) in enumerate(messages)
            ],
        )
    finally:
        con.close()


def raw_rows(raw_db: Path, sql: str, params: list[object] | None = None) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(raw_db), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def log_rows(vault_db: Path) -> int:
    con = duckdb.connect(str(vault_db), read_only=True)
    try:
        row = con.execute("select count(*) from main.reidentification_log").fetchone()
        return int(row[0]) if row else 0
    finally:
        con.close()


@dataclass
class Attacked:
    workspace: Workspace
    other_customer: str
    exit_code: int
    hits: list[tuple[str, str]]
    output: str
    web_left: set[str] = field(default_factory=set)
    messages_left: set[str] = field(default_factory=set)
    bi_copy: Path | None = None

    def files_holding(self, label: str) -> list[str]:
        return [where for where, found in self.hits if found == label]


@pytest.fixture(scope="module")
def attacked(built: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Attacked]:
    ws = copy_workspace(built, tmp_path_factory.mktemp("attacked"))
    other = plant(ws.raw_db)
    plant_truth(ws.truth_db)
    plant_attacks(ws.raw_db, other)
    from cdp import cli

    with environment(_cdp_env(ws)):
        assert cli.main(["build"]) == 0
    # A BI user's copy of the release published before the erasure (outside the product).
    bi_copy = tmp_path_factory.mktemp("bi") / "published"
    shutil.copytree(ws.root / "published", bi_copy, symlinks=True)
    # The attack's own power: every attack value is in the raw zone before the erasure.
    before = scan(
        ws.raw_db.parent,
        attack_needles(),
    )
    missing = set(attack_needles()) - {label for _, label in before}
    assert not missing, missing
    out = io.StringIO()
    with environment(_cdp_env(ws)), contextlib.redirect_stdout(out):
        code = erase.main([])
    hits = scan(ws.root, attack_needles())
    web_left = {
        str(r[0])
        for r in raw_rows(
            ws.raw_db, "select event_id from web.events where event_id like 'ev-atk-%'"
        )
    }
    messages_left = {
        str(r[0])
        for r in raw_rows(
            ws.raw_db,
            "select message_event_id from messaging.message_events "
            "where message_event_id like 'me-atk-%'",
        )
    }
    yield Attacked(ws, other, code, hits, out.getvalue(), web_left, messages_left, bi_copy)


def test_the_erasure_ran_and_its_own_test_still_holds(attacked: Attacked) -> None:
    assert attacked.exit_code == 0, attacked.output[-3000:]
    assert ERASURE_REQUEST in attacked.output
    # the base person's planted values (test_erasure's needles and pseudonyms) minus those
    # the attack rows re-plant on purpose (her email, name and digits occur in them; the
    # email's pseudonym: see test_another_persons_rectification_keeps_her_email_in_the_vault)
    replanted = {"email", "email normalised", "email local part", "name", "surname", "phone digits"}
    wanted = {
        label: needle
        for label, needle in {**needles(), **person_pseudonyms(attacked.workspace)}.items()
        if label not in replanted and not label.startswith("email pseudonym")
    }
    hits = scan(attacked.workspace.root, wanted)
    assert not hits, hits


# --------------------------------------------------------------------------- held (controls)


@pytest.mark.parametrize(
    "tag",
    [
        "h17_surname_first_comma",
        "h27_customer_id_lower",
        "h19_referrer_email",
        "h20_nested_json_array",
        "h21_json_key",
        # caught only because her local part spells her name (see the unit tests below)
        "a5_fullwidth_at",
        "a28_email_then_fragment",
    ],
)
def test_free_text_forms_the_purge_does_match(attacked: Attacked, tag: str) -> None:
    assert f"ev-atk-{tag}" not in attacked.web_left
    assert not attacked.files_holding(tag)


def test_recipient_in_other_case_and_spacing_goes(attacked: Attacked) -> None:
    assert "me-atk-h13" not in attacked.messages_left


def test_the_other_visitors_device_is_not_wrongly_destroyed(attacked: Attacked) -> None:
    assert "ev-atk-login" in attacked.web_left


# --------------------------------------------------------------------------- findings


def _xfail(reason: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(strict=True, reason=reason)


@pytest.mark.parametrize(
    "tag",
    [
        pytest.param("a1_endash_phone"),
        pytest.param("a23_slash_phone"),
        pytest.param("a25_00_prefix_phone"),
        pytest.param(
            "a16_surname_only",
            marks=_xfail("by design (decision 48): a surname alone names no one person"),
        ),
        pytest.param("a26_card_spaced"),
    ],
)
def test_her_identifier_in_another_visitors_search_is_destroyed(
    attacked: Attacked, tag: str
) -> None:
    assert f"ev-atk-{tag}" not in attacked.web_left
    assert not attacked.files_holding(tag), attacked.files_holding(tag)


@pytest.mark.parametrize(
    "tag",
    [
        pytest.param("a2_email_pipe_separated"),
        pytest.param("a3_email_triple_encoded"),
        pytest.param(
            "a4_email_base64",
            marks=_xfail(
                "not decoded (decision 48): encodings beyond percent-escapes are out of reach"
            ),
        ),
    ],
)
def test_her_email_in_another_visitors_url_is_destroyed(attacked: Attacked, tag: str) -> None:
    assert f"ev-atk-{tag}" not in attacked.web_left
    assert not attacked.files_holding(tag), attacked.files_holding(tag)


def test_her_email_in_a_user_agent_is_destroyed(attacked: Attacked) -> None:
    assert "ev-atk-a6_user_agent" not in attacked.web_left
    assert not attacked.files_holding("a6_user_agent")


def test_her_email_in_a_product_sku_is_destroyed(attacked: Attacked) -> None:
    assert not attacked.files_holding("a7_product_sku"), attacked.files_holding("a7_product_sku")


def test_her_email_in_another_consents_evidence_ref_is_destroyed(attacked: Attacked) -> None:
    assert not attacked.files_holding("a8_consent_evidence_ref")


def test_her_name_on_her_own_order_line_is_destroyed(attacked: Attacked) -> None:
    assert not attacked.files_holding("a9_order_item_name"), attacked.files_holding(
        "a9_order_item_name"
    )


def test_her_email_in_another_persons_request_details_is_destroyed(attacked: Attacked) -> None:
    assert not attacked.files_holding("a11_other_persons_request_details")


def test_another_persons_rectification_keeps_her_email_in_the_vault(attacked: Attacked) -> None:
    ws = attacked.workspace
    assert vault_rows_held(ws, "erasure attack check") == 0


def test_her_email_as_recipient_on_an_unknown_channel_is_destroyed(attacked: Attacked) -> None:
    assert "me-atk-a12" not in attacked.messages_left


@_xfail("by design (decision 48): a plus-tagged address is another mailbox, not normalised away")
def test_her_plus_tagged_mailbox_is_destroyed(attacked: Attacked) -> None:
    assert "me-atk-a14" not in attacked.messages_left
    assert not attacked.files_holding("a14_plus_tag_recipient"), attacked.files_holding(
        "a14_plus_tag_recipient"
    )


# --------------------------------------------------------------------------- --check


def test_check_is_an_accountable_lookup(attacked: Attacked) -> None:
    ws = attacked.workspace
    before = log_rows(ws.vault_db)
    officer = ["--officer", "dpo", "--reason", "DSR-77 check"]
    # one process per call, as from the shell: the command takes the key out of the environment
    with environment(_cdp_env(ws)), contextlib.redirect_stdout(io.StringIO()):
        assert erase.main(["--check", "email", EMAIL.upper()]) == 2  # no officer: refused
    out = io.StringIO()
    with environment(_cdp_env(ws)), contextlib.redirect_stdout(out):
        assert erase.main(["--check", "email", EMAIL.upper(), *officer]) == 0
    assert ERASURE_REQUEST in out.getvalue()  # "was Zelda a customer who asked to be erased": yes
    with environment(_cdp_env(ws)), contextlib.redirect_stdout(io.StringIO()):
        assert erase.main(["--check", "customer_id", CUSTOMER_ID, *officer]) == 0
    # logged like a vault lookup (decision 37), without the identifier's pseudonym
    assert log_rows(ws.vault_db) == before + 2
    con = duckdb.connect(str(ws.vault_db), read_only=True)
    try:
        logged = con.execute(
            "select pseudonym, action, outcome from main.reidentification_log "
            "where tool = 'cdp.erase' order by seq"
        ).fetchall()
    finally:
        con.close()
    assert logged == [(None, "erasure_check", "erased"), (None, "erasure_check", "erased")]


# --------------------------------------------------------------------------- re-delivery


def _relocated(ws: Workspace, root: Path) -> Workspace:
    from conftest import make_workspace

    shutil.copytree(ws.root, root, symlinks=True, dirs_exist_ok=True)
    moved = make_workspace(root)
    moved.key = ws.key
    moved.env["CDP_MASTER_KEY"] = ws.key
    return moved


@dataclass
class Redelivered:
    workspace: Workspace
    after_build: dict[str, list[str]]
    vault_rows_held: int
    second_erase_code: int
    raw_after_second_erase: list[tuple[Any, ...]]
    as_of: dt.datetime
    built_as_of: set[Any]


@pytest.fixture(scope="module")
def redelivered(
    attacked: Attacked, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Redelivered]:
    """After the erasure, the CRM loader re-delivers her record (at-least-once, contract)."""
    ws = _relocated(attacked.workspace, tmp_path_factory.mktemp("redelivered") / "ws")
    con = duckdb.connect(str(ws.raw_db))
    try:
        _insert(
            con,
            "crm.customers",
            [
                {
                    "customer_id": CUSTOMER_ID,
                    "email": EMAIL,
                    "phone": "+7 (912) 555-01-23",
                    "first_name": "Zelda",
                    "last_name": "Obliviate",
                    "created_at": dt.datetime(2025, 3, 1),
                    "updated_at": dt.datetime(2026, 9, 1),
                    "is_deleted": False,
                    "_batch_id": "redelivery",
                    "_loaded_at": dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0),
                }
            ],
        )
    finally:
        con.close()
    # The next build's models (its data tests write nothing; `cdp erase` below tests its rebuild).
    result = run_dbt(("run",), _cdp_env(ws), ws.root)
    assert result.success, result.output[-4000:]
    wanted = person_pseudonyms(ws)
    after_build: dict[str, list[str]] = {}
    for db in (ws.warehouse_db, ws.vault_db):
        live = _live_strings(db).lower()
        after_build[db.name] = [label for label, needle in wanted.items() if needle in live]
    held_rows = vault_rows_held(ws, "re-delivery check")
    # Judged at a fixed moment (a minute ago, to the second): the purge and every rebuild of
    # this erasure must use it, not the time each dbt run starts.
    as_of = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).replace(tzinfo=None, microsecond=0)
    with environment(_cdp_env(ws)), contextlib.redirect_stdout(io.StringIO()):
        code = erase.main(["--as-of", as_of.isoformat()])
    left = raw_rows(
        ws.raw_db,
        "select customer_id, email from crm.customers where customer_id = ?",
        [CUSTOMER_ID],
    )
    con = duckdb.connect(str(ws.warehouse_db), read_only=True)
    try:
        built_as_of = {
            row[0]
            for table in ("marts.dim_customer_profile", "marts.fct_profile_events")
            for row in con.execute(f"select distinct as_of from {table}").fetchall()
        }
    finally:
        con.close()
    yield Redelivered(ws, after_build, held_rows, code, left, as_of, built_as_of)


@_xfail("documented (decision 48): a re-delivery is built until the next `cdp erase` destroys it")
def test_a_redelivered_record_does_not_bring_the_person_back(redelivered: Redelivered) -> None:
    assert redelivered.after_build == {"warehouse.duckdb": [], "vault.duckdb": []}
    assert redelivered.vault_rows_held == 0


def test_running_erase_again_destroys_the_redelivered_record(redelivered: Redelivered) -> None:
    assert redelivered.second_erase_code == 0
    assert redelivered.raw_after_second_erase == []


def test_erase_rebuilds_the_warehouse_as_of_its_as_of(redelivered: Redelivered) -> None:
    # `cdp erase --as-of` once purged at that moment but rebuilt the warehouse as of the run.
    assert redelivered.built_as_of == {redelivered.as_of}


# --------------------------------------------------------------------------- detector units
# The email forms above that the purge did catch were caught by the *name* match (her local
# part is "zelda.obliviate"). For a person whose address does not spell their name, the
# email detector alone decides: these call it the way link_free_text does, without names.


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(
            "https://mail.example/inbox/zo1990@example.org#msg",
            id="fragment",
        ),
        pytest.param(
            "zo1990\uff20example.org",
            id="fullwidth-at",
        ),
        pytest.param(
            "https://shop.example/r?next=zo1990%40example.org%7Cpromo",
            id="pipe",
        ),
        pytest.param(
            "https://shop.example/r?ref=zo1990%252540example.org",
            id="triple-encoded",
        ),
        pytest.param("https://shop.example/p?to=zo1990%40example.org", id="control"),
    ],
)
def test_the_free_text_detector_finds_an_email_that_is_not_a_name(text: str) -> None:
    from cdp import purge

    owner = ("person", "request")
    wanted = {("email", "zo1990@example.org"): owner}
    assert purge._free_text_owner(text, wanted, None, {}, {}) == owner
