"""Free text that names an erased person, and the devices that carried it.

Emails and phones are found and normalised as staging finds them; customer ids, device
ids, cards and passports as whole tokens in any layout of separators; the name with the
surname. The matching is plain Python (:func:`_free_text_owner`), tested with hostile input.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Final

import pyarrow as pa

from cdp import normalise, sources
from cdp.purge.core import Purger

# Identifier types matched inside free text as whole tokens (emails and phones are extracted
# and normalised instead: normalise.identifiers_in_text).
TOKEN_TYPES: Final = ("customer_id", "anonymous_id", "loyalty_card", "push_token")
MIN_TOKEN_LENGTH: Final = 6


def text_rows(table: sources.Table) -> str:
    """The temp table of ``table``'s rows whose free text names an erased person."""
    return f"purge_text_{table.schema}_{table.name}"


def device_column(table: sources.Table) -> str | None:
    """The column of a device id (anonymous_id) in ``table``, if it has one."""
    for column, id_type in table.identifier_columns:
        if id_type == "anonymous_id":
            return column
    return None


def link_free_text(purger: Purger) -> None:
    """The person's identifiers inside free text, and the devices that carried them.

    Site events whose page or referrer URL, search query or properties hold one of the
    erased person's identifiers (emails and phones found and normalised as staging finds
    them; customer ids, device ids and cards as whole tokens; the name with the surname)
    are the person's data wherever they are (``text_rows``; every landing column the
    sources' metadata marks ``free_text``). A device that carried
    them and never logged in as anyone else is the person's device: its id joins the
    person's identifiers, so every row of it goes (``purge_erased_values``).
    """
    erased = purger.sql(
        "select distinct id_type, raw_value, person_key, request_id from purge_erased_values"
    ).fetchall()
    wanted: dict[tuple[str, str], tuple[str, str]] = {}
    tokens: dict[str, tuple[str, str]] = {}
    for id_type, raw_value, person_key, request_id in erased:
        value = normalise.normalise_identifier(id_type, raw_value)
        if value is None:
            continue
        owner = (str(person_key), str(request_id))
        wanted[(id_type, value)] = owner
        if id_type in TOKEN_TYPES:
            # as normalised and as typed (a card is normalised without its dashes)
            for form in (value, str(raw_value)):
                if len(_token_core(form)) >= MIN_TOKEN_LENGTH:
                    tokens[_token_core(form)] = owner
    names: dict[str, tuple[str, str]] = {}
    for first, last, passport, person_key, request_id in purger.sql(
        """
        select distinct customers.first_name, customers.last_name, customers.passport_number,
            erased.person_key, erased.request_id
        from crm.customers as customers
        inner join purge_erased_values as erased
            on erased.id_type = 'customer_id' and customers.customer_id = erased.raw_value
        """
    ).fetchall():
        owner = (str(person_key), str(request_id))
        first_name, last_name = normalise.normalise_name(first), normalise.normalise_name(last)
        if first_name and last_name:
            for pair in (f"{first_name} {last_name}", f"{last_name} {first_name}"):
                names[f" {pair} "] = owner
        # a passport number, in any layout
        if isinstance(passport, str) and len(_token_core(passport)) >= MIN_TOKEN_LENGTH:
            tokens[_token_core(passport)] = owner
    token_pattern = _token_pattern(tokens)

    def named_rows(name: str, table: str, columns: Sequence[str], carried: str) -> None:
        """Temp table ``name``: rows of ``table`` whose free text names an erased person."""
        texts = " union ".join(
            f"select distinct {column} as text from {table} where {column} is not null"
            for column in columns
        )
        hits: list[tuple[str, str, str]] = []
        for (text,) in purger.sql(texts).fetchall():
            named = _free_text_owner(str(text), wanted, token_pattern, tokens, names)
            if named is not None:
                hits.append((str(text), *named))
        found = pa.table(
            {
                "text": pa.array([h[0] for h in hits], pa.string()),
                "person_key": pa.array([h[1] for h in hits], pa.string()),
                "request_id": pa.array([h[2] for h in hits], pa.string()),
            }
        )
        purger.con.register("purge_text_hits_arrow", found)
        joins = " union ".join(
            f"select rows.rowid as row_id, {carried} as carried, hits.person_key, "
            f"hits.request_id from {table} as rows inner join purge_text_hits_arrow as hits "
            f"on rows.{column} = hits.text"
            for column in columns
        )
        purger.sql(f"create or replace temp table {name} as {joins}")
        purger.con.unregister("purge_text_hits_arrow")

    carriers: list[str] = []
    logins: list[str] = []
    for table in sources.landing_tables():
        device = device_column(table)
        if table.free_text_columns:
            carried = f"rows.{device}" if device else "cast(null as varchar)"
            named_rows(text_rows(table), table.qualified, table.free_text_columns, carried)
            if device:
                carriers.append(text_rows(table))
        customer = [c for c, t in table.identifier_columns if t == "customer_id"]
        if device and customer:
            logins.append(
                f"select {device} as device, {customer[0]} as customer_id from {table.qualified}"
            )
    if not carriers:
        return
    # Devices that carried the person's identifiers and never logged in as anyone else.
    devices = purger.sql(
        f"""
        select distinct hits.carried, hits.person_key, hits.request_id
        from ({" union all ".join(f"select * from {name}" for name in carriers)}) as hits
        where
            hits.carried is not null
            and not exists (
                select 1
                from ({" union all ".join(logins) or "select null as device, null as customer_id"}) as events
                where
                    events.device = hits.carried
                    and nullif(trim(events.customer_id), '') is not null
                    and events.customer_id not in (
                        select erased.raw_value
                        from purge_erased_values as erased
                        where erased.id_type = 'customer_id' and erased.person_key = hits.person_key
                    )
            )
        """
    ).fetchall()
    if not devices:
        return
    table = pa.table(
        {
            "subject_key": pa.array(
                [purger.subject_key("anonymous_id", d[0]) for d in devices], pa.string()
            ),
            "person_key": pa.array([d[1] for d in devices], pa.string()),
            "request_id": pa.array([d[2] for d in devices], pa.string()),
        }
    )
    purger.con.register("purge_devices_arrow", table)
    purger.sql(
        """
        insert into purge_erased_values
        select distinct keys.id_type, keys.raw_value, devices.person_key, devices.request_id
        from purge_all_keys as keys
        inner join purge_devices_arrow as devices
            on keys.subject_key = devices.subject_key
        where not exists (
            select 1 from purge_erased_values as known
            where known.id_type = keys.id_type and known.raw_value = keys.raw_value
        )
        """
    )
    purger.con.unregister("purge_devices_arrow")


_TOKEN_SEPARATORS: Final = r"[\s\-_./:]*"  # noqa: S105 (a regex, not a password)


def _token_core(text: str) -> str:
    """A token as its letters and digits only (lower case): how tokens are compared."""
    return "".join(ch for ch in normalise.duckdb_lower(text) if ch.isalnum())


def _token_pattern(tokens: Mapping[str, object]) -> re.Pattern[str] | None:
    """One regex for whole tokens (not inside a longer word), in any layout of separators.

    ``LC-ERASE-889977``, ``lc erase 889977`` and ``LCERASE889977`` are one token; so
    are ``4510 778899`` and ``4510-778899``.
    """
    cores = sorted(
        {_token_core(t) for t in tokens if len(_token_core(t)) >= MIN_TOKEN_LENGTH},
        key=len,
        reverse=True,
    )
    if not cores:
        return None
    alternatives = [_TOKEN_SEPARATORS.join(re.escape(ch) for ch in core) for core in cores]
    return re.compile(r"(?<![0-9a-z])(?:" + "|".join(alternatives) + r")(?![0-9a-z])")


def _free_text_owner(
    text: str,
    wanted: Mapping[tuple[str, str], tuple[str, str]],
    token_pattern: re.Pattern[str] | None,
    tokens: Mapping[str, tuple[str, str]],
    names: Mapping[str, tuple[str, str]],
) -> tuple[str, str] | None:
    """The (person_key, request_id) of the erased person a free-text value names, or None.

    ``tokens`` is keyed by :func:`_token_core`.
    """
    forms = normalise.decoded_forms(text)
    for found in normalise.identifiers_in_forms(forms):
        if found in wanted:
            return wanted[found]
    # the whole address inside a longer word ("egift-name@host" holds "name@host")
    for (id_type, value), owner in wanted.items():
        if id_type == "email" and any(value in normalise.duckdb_lower(f) for f in forms):
            return owner
    if token_pattern is not None:
        for candidate in forms:
            match = token_pattern.search(normalise.duckdb_lower(candidate))
            if match is not None:
                return tokens[_token_core(match.group(0))]
    if names:
        for candidate in forms:
            spaced = f" {normalise.normalise_name(candidate) or ''} "
            for pair, owner in names.items():
                if pair in spaced:
                    return owner
    return None
