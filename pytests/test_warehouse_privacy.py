"""Privacy acceptance tests on a real build of a generated landing zone.

- no key material in any file the build leaves, nor in ``dbt debug``;
- no raw identifier (or its normalised form) in any string column outside the
  raw zone and the vault; none in plaintext in the vault;
- a plain (unkeyed) hash of an email or phone fails the build;
- a missing key stops the build before any database file is written.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from cdp import keys, normalise
from conftest import ROOT, Workspace, make_workspace, run_dbt

pytestmark = pytest.mark.dbt


# --------------------------------------------------------------------------- helpers


def key_forms(workspace: Workspace) -> dict[str, bytes]:
    """The master key and every key derived from it, raw, hex and base64."""
    master = keys.load_master_key({"CDP_MASTER_KEY": workspace.key})
    secrets_by_name: dict[str, bytes] = {"master": master.secret}
    for domain in ("identity", "person", "partner"):
        secrets_by_name[f"pseudonym:{domain}"] = keys.pseudonym_key(master, domain)
    secrets_by_name["vault"] = keys.vault_encryption_key(master)
    secrets_by_name["vault-nonce"] = keys.vault_nonce_key(master)
    forms: dict[str, bytes] = {}
    for name, secret in secrets_by_name.items():
        forms[f"{name} raw"] = secret
        forms[f"{name} hex"] = secret.hex().encode()
        forms[f"{name} HEX"] = secret.hex().upper().encode()
        forms[f"{name} base64"] = base64.b64encode(secret).rstrip(b"=")
        forms[f"{name} base64url"] = base64.urlsafe_b64encode(secret).rstrip(b"=")
    # HMAC pads: knowing one is knowing the key.
    identity = secrets_by_name["pseudonym:identity"].ljust(64, b"\0")
    forms["identity ipad hex"] = bytes(b ^ 0x36 for b in identity).hex().encode()
    forms["identity opad hex"] = bytes(b ^ 0x5C for b in identity).hex().encode()
    return forms


def files_under(*folders: Path) -> Iterator[Path]:
    for folder in folders:
        if folder.is_file():
            yield folder
        elif folder.exists():
            yield from (p for p in folder.rglob("*") if p.is_file() and ".venv" not in p.parts)


def string_columns(con: duckdb.DuckDBPyConnection, catalog: str) -> list[tuple[str, str, str]]:
    return [
        (row[0], row[1], row[2])
        for row in con.execute(
            "select table_schema, table_name, column_name from information_schema.columns "
            "where table_catalog = ? and data_type = 'VARCHAR' order by all",
            [catalog],
        ).fetchall()
    ]


def raw_personal_values(raw_db: Path) -> dict[str, set[str]]:
    """Every email, phone, name, passport, address and IP in the raw zone, with normalised forms."""
    con = duckdb.connect(str(raw_db), read_only=True)
    try:

        def column(sql: str) -> list[str]:
            return [
                r[0] for r in con.execute(sql).fetchall() if r[0] is not None and str(r[0]).strip()
            ]

        emails = column(
            "select email from crm.customers union select email from shop.orders "
            "union select recipient from messaging.message_events where channel = 'email' "
            "union select subject_id from privacy.consent_events where subject_id_type = 'email' "
            "union select subject_id from privacy.subject_requests where subject_id_type = 'email'"
        )
        phones = column(
            "select phone from crm.customers union select phone from shop.orders "
            "union select recipient from messaging.message_events where channel in ('sms', 'messenger') "
            "union select subject_id from privacy.consent_events where subject_id_type = 'phone' "
            "union select subject_id from privacy.subject_requests where subject_id_type = 'phone'"
        )
        names = column(
            "select first_name from crm.customers union select last_name from crm.customers "
            "union select middle_name from crm.customers"
        )
        passports = column("select passport_number from crm.customers")
        addresses = column(
            "select address from crm.customers union select delivery_address from shop.orders"
        )
        ips = column("select ip_address from web.events")
    finally:
        con.close()

    values: dict[str, set[str]] = {
        "email": set(),
        "phone": set(),
        "name": set(),
        "passport": set(),
        "address": set(),
        "ip": set(),
    }
    for email in emails:
        values["email"].add(email.strip().lower())
        if (norm := normalise.normalise_email(email)) is not None:
            values["email"].add(norm)
    for phone in phones:
        digits = re.sub(r"\D", "", phone)
        if (
            len(digits) >= 7 and len(set(digits)) > 2
        ):  # junk like '0000000' is not a person's number
            values["phone"].add(digits)
        if (norm := normalise.normalise_phone(phone)) is not None and len(set(norm)) > 3:
            values["phone"].add(re.sub(r"\D", "", norm))
    for name in names:
        if len(name.strip()) >= 3:
            values["name"].add(name.strip().lower())
            if (norm := normalise.normalise_name(name)) is not None:
                values["name"].add(norm.lower())
    values["passport"] = {p.strip().lower() for p in passports}
    values["address"] = {a.strip().lower() for a in addresses}
    for ip in ips:
        # A network address (x.y.z.0) is its own /24 prefix: keeping the prefix is
        # the approved generalisation, not a leak of that address.
        if ip.strip() != normalise.truncate_ip(ip):
            values["ip"].add(ip.strip().lower())
    return values


def find_personal_data(
    con: duckdb.DuckDBPyConnection, catalog: str, values: dict[str, set[str]]
) -> list[str]:
    """Columns of ``catalog`` holding any of ``values``: whole values, or emails/phones inside text."""
    con.execute("create or replace temp table pii_values (category varchar, value varchar)")
    con.executemany(
        "insert into pii_values values (?, ?)",
        [(category, value) for category, found in values.items() for value in found],
    )
    findings: list[str] = []
    for schema, table, column in string_columns(con, catalog):
        relation = f'"{catalog}"."{schema}"."{table}"'
        # Seeds are public reference data kept in the repository: a city that is
        # also a first name (Vladimir) is not a person's name.
        skip_names = "and pii_values.category <> 'name'" if schema == "reference" else ""
        hits = con.execute(
            f"""
            with col as (select distinct "{column}" as v from {relation} where "{column}" is not null),
            candidates as (
                select lower(trim(v)) as candidate from col
                union all
                select lower(unnest(regexp_extract_all(v, '[^\\s/?&=#:;,"<>()]+@[^\\s/?&=#:;,"<>()]+')))
                from col
                union all
                select regexp_replace(unnest(regexp_extract_all(v, '\\+?\\d[\\d\\s().-]{{5,}}\\d')), '\\D', '', 'g')
                from col
            )
            select pii_values.category, count(*) from candidates
            join pii_values on candidates.candidate = pii_values.value {skip_names}
            group by pii_values.category
            """
        ).fetchall()
        findings += [f"{schema}.{table}.{column}: {n} {category} value(s)" for category, n in hits]
    return findings


# --------------------------------------------------------------------------- tests


def test_build_reconciles_every_raw_row(built: Workspace) -> None:
    con = duckdb.connect(str(built.warehouse_db), read_only=True)
    con.execute(f"attach '{built.raw_db}' as raw (read_only)")
    try:
        accounted = dict(
            con.execute(
                "select source_table, sum(kept_rows + duplicate_rows + superseded_rows + quarantined_rows) "
                "from audit.audit_row_accounting group by source_table"
            ).fetchall()
        )
        for source_table in (
            "crm.customers",
            "web.events",
            "shop.orders",
            "shop.order_items",
            "messaging.message_events",
            "privacy.consent_events",
            "privacy.subject_requests",
        ):
            raw_rows = con.execute(f"select count(*) from raw.{source_table}").fetchone()
            assert raw_rows is not None and raw_rows[0] > 0
            assert accounted[source_table] == raw_rows[0], source_table
        quarantined = con.execute("select count(*) from audit.audit_quarantine").fetchone()
        assert quarantined is not None and quarantined[0] > 0, (
            "the generator's dirt should be quarantined"
        )
    finally:
        con.close()


def test_no_key_material_in_any_file_or_dbt_debug(built: Workspace) -> None:
    forms = key_forms(built)
    debug = built.dbt("debug")
    leaks = [
        f"dbt debug output: {name}"
        for name, form in forms.items()
        if form.decode("latin-1") in debug.output
    ]
    scanned = 0
    for path in files_under(built.root, ROOT / "target", ROOT / "logs", ROOT / "data"):
        content = path.read_bytes()
        scanned += 1
        leaks += [f"{path}: {name}" for name, form in forms.items() if form in content]
    assert scanned > 10, "the scan must cover the build's databases, target/ and logs/"
    assert {p.suffix for p in files_under(built.root)} >= {".duckdb", ".sql", ".json", ".log"}
    assert leaks == []


def test_no_personal_data_outside_raw_and_vault(built: Workspace) -> None:
    values = raw_personal_values(built.raw_db)
    assert all(values[c] for c in ("email", "phone", "name", "passport", "address", "ip"))
    con = duckdb.connect(str(built.warehouse_db), read_only=True)
    try:
        catalog = con.execute("select current_database()").fetchone()
        assert catalog is not None
        assert len(string_columns(con, catalog[0])) > 20
        assert find_personal_data(con, catalog[0], values) == []
    finally:
        con.close()


def test_the_personal_data_scan_finds_a_planted_email(built: Workspace, tmp_path: Path) -> None:
    """The scan above can fail: a copy of the warehouse with one raw email planted is caught."""
    values = raw_personal_values(built.raw_db)
    email = sorted(values["email"])[0]
    con = duckdb.connect(str(tmp_path / "planted.duckdb"))
    try:
        con.execute(
            "create table leak as select 'see https://x.ru/?next=' || ? || '&a=1' as note", [email]
        )
        assert find_personal_data(con, "planted", values) == ["main.leak.note: 1 email value(s)"]
    finally:
        con.close()


def test_vault_holds_no_plaintext(built: Workspace) -> None:
    values = raw_personal_values(built.raw_db)
    con = duckdb.connect(str(built.vault_db), read_only=True)
    try:
        rows = con.execute("select count(*) from vault_identifiers").fetchone()
        assert rows is not None and rows[0] > 0
        assert find_personal_data(con, "vault", values) == []
    finally:
        con.close()
    content = built.vault_db.read_bytes()
    emails = [e for e in values["email"] if "@" in e and len(e) > 8]
    assert emails
    assert [e for e in emails if e.encode() in content] == []


def test_unkeyed_hash_of_an_email_fails_the_build(built: Workspace, tmp_path: Path) -> None:
    clean = built.dbt("test", "--select", "assert_no_unkeyed_hash_of_identifiers")
    assert clean.success, clean.output[-3000:]

    raw = duckdb.connect(str(built.raw_db), read_only=True)
    email_row = raw.execute(
        "select email from crm.customers where email like '%@%.%' and email not like '%test%' limit 1"
    ).fetchone()
    raw.close()
    assert email_row is not None
    plain = normalise.normalise_email(email_row[0])
    assert plain is not None

    import hashlib

    sha = hashlib.sha256(plain.encode()).hexdigest()
    md5 = hashlib.md5(plain.encode()).hexdigest()  # noqa: S324 (the leak planted)
    con = duckdb.connect(str(built.warehouse_db))
    try:
        # One failing row per column that holds a plain hash: sha256 as the whole value, md5
        # after a prefix (also one of hex digits), a sha256 in a list; a view that computes is
        # scanned, each of its columns (its text columns are read in one pass): upper case,
        # md5 after a prefix, a list, under a name with both quote characters; a view that
        # only selects is not (its table is). A value that ends like the sha256 but is not it
        # (the scan probes by the last 32 characters, then confirms on 64) is no hash of an
        # identifier: no row, in the table or in the view.
        con.execute(
            "create table main.planted_plain_hash as select ? as email_hash, ? as email_md5, "
            "? as email_md5_hex_prefix, ? as email_hashes, ? as sha256_tail_only",
            [sha, "v1_" + md5, "ab12" + md5, ["x", sha], "f" * 32 + sha[32:]],
        )
        name = 'it\'s "loud"'  # a column name with both quote characters
        loud = '"' + name.replace('"', '""') + '"'
        con.execute(
            f"create view main.planted_computing_view as select upper(email_hash) as {loud}, "
            "'x' as short_text, "
            "'pre_' || email_md5 as prefixed_md5, lower(sha256_tail_only) as tail_only, "
            "list_reverse(email_hashes) as hash_list from main.planted_plain_hash"
        )
        con.execute(
            "create view main.planted_plain_view as "
            "select email_hash, email_md5 from main.planted_plain_hash"
        )
    finally:
        con.close()
    vault = duckdb.connect(str(built.vault_db))
    try:
        vault.execute("create table main.planted_vault_hash as select ? as sealed_note", [sha])
    finally:
        vault.close()
    try:
        dirty = built.dbt("test", "--select", "assert_no_unkeyed_hash_of_identifiers")
        assert not dirty.success
        assert "assert_no_unkeyed_hash_of_identifiers" in dirty.output
        assert "Got 8 results" in dirty.output, dirty.output[-3000:]
    finally:
        con = duckdb.connect(str(built.warehouse_db))
        con.execute("drop view main.planted_plain_view")
        con.execute("drop view main.planted_computing_view")
        con.execute("drop table main.planted_plain_hash")
        con.close()
        vault = duckdb.connect(str(built.vault_db))
        vault.execute("drop table main.planted_vault_hash")
        vault.close()


@pytest.mark.parametrize(
    ("key_env", "expected"),
    [
        ({}, "CDP_MASTER_KEY"),
        ({"CDP_MASTER_KEY": "short"}, "32"),
        ({"CDP_MASTER_KEY": "changeme" * 8}, "placeholder"),
    ],
)
def test_bad_key_stops_before_anything_is_written(
    built: Workspace, tmp_path: Path, key_env: dict[str, str], expected: str
) -> None:
    workspace = make_workspace(tmp_path)
    env = {**workspace.env, "CDP_RAW_DB": str(built.raw_db)}
    env.pop("CDP_MASTER_KEY")
    env.update(key_env)
    result = run_dbt(["build"], env, tmp_path)
    assert not result.success
    assert expected.lower() in result.output.lower()
    assert not workspace.warehouse_db.exists()
    assert not workspace.vault_db.exists()
    if "CDP_MASTER_KEY" in key_env:
        assert key_env["CDP_MASTER_KEY"] not in result.output
