"""Batches after the first: a day in the life of the persons already there.

Existing persons (from the truth file) browse, order, get messages, change
consents and file requests; some CRM records and open orders get new
versions; some rows of the previous batch are delivered again.
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cdp.contract import TABLES
from cdp.generator.dirt import dirt_table
from cdp.generator.emit import Writer, emit_activity
from cdp.generator.model import CHUNK, Batch, Frame, Registry, Rows, TruthPart, batch_id
from cdp.generator.people import (
    Counters,
    addresses,
    loyalty_numbers,
    new_phones,
    unique_emails,
)
from cdp.generator.pools import DEVICE_NAMES, LOCALES, Pools
from cdp.generator.store import GenerationError
from cdp.generator.truth import RECORD_KEYS
from cdp.generator.vec import (
    I64,
    US_PER_HOUR,
    US_PER_SECOND,
    Arr,
    Rng,
    booleans,
    const,
    put,
    strings,
    take,
    timestamps,
    uuid4_strings,
    where,
)

# Daily activity of existing persons: (share of persons, minimum number).
EXISTING_SHARE: dict[str, tuple[float, int]] = {
    "web": (0.06, 3),
    "orders": (0.015, 2),
    "messages": (0.10, 3),
    "consents": (0.01, 2),
    "requests": (0.003, 1),
    "crm": (0.02, 2),
}


def _index_in(values: Arr, options: tuple[str, ...]) -> I64:
    got = pc.index_in(values, value_set=strings(list(options)))
    return np.asarray(pc.fill_null(got, 0).to_numpy(zero_copy_only=False), dtype=np.int64)


def _ts_us(values: Arr) -> I64:
    return np.asarray(values.cast(pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)


def load_frame(truth: duckdb.DuckDBPyConnection, ids: Arr, batch: Batch) -> tuple[Frame, pa.Table]:
    """Existing persons (current truth profile and devices), in the order of ``ids``."""
    sel = pa.table({"person_id": ids, "idx": pa.array(np.arange(len(ids), dtype=np.int64))})
    truth.register("_sel", sel)
    try:
        prof = truth.sql(
            """
            with cur as (
                select * from profiles
                where person_id in (select person_id from _sel)
                qualify row_number() over (partition by person_id order by _batch_id desc) = 1
            )
            select s.idx, p.locale, p.gender, p.first_name, p.last_name, p.created_at, c.*
            from _sel s join persons p using (person_id) join cur c using (person_id)
            order by s.idx
            """
        ).to_arrow_table()
        dev = truth.sql(
            """
            select s.idx, d.anonymous_id, d.device_type, d.user_agent, d.first_seen_at
            from _sel s join devices d using (person_id)
            order by s.idx, d.first_seen_at, d.anonymous_id
            """
        ).to_arrow_table()
    finally:
        truth.unregister("_sel")
    if prof.num_rows != len(ids):
        raise GenerationError("the truth file is inconsistent: persons without a profile")
    col = prof.column
    frame = Frame(
        person_id=col("person_id").combine_chunks(),
        locale=_index_in(col("locale"), LOCALES),
        female=np.asarray(pc.equal(col("gender"), "f").to_numpy(zero_copy_only=False), dtype=bool),
        first_name=col("first_name").combine_chunks(),
        last_name=col("last_name").combine_chunks(),
        customer_id=col("customer_id").combine_chunks(),
        alt_customer_id=col("alt_customer_id").combine_chunks(),
        email=col("email").combine_chunks(),
        phone=col("phone").combine_chunks(),
        push_token=col("push_token").combine_chunks(),
        city=col("city").combine_chunks(),
        address=col("address").combine_chunks(),
        signup_us=_ts_us(col("created_at")),
        start_us=np.full(len(ids), batch.start_us, dtype=np.int64),
        dev_person=np.asarray(dev.column("idx").to_numpy(), dtype=np.int64),
        dev_anon=dev.column("anonymous_id").combine_chunks(),
        dev_type=_index_in(dev.column("device_type"), DEVICE_NAMES),
        dev_ua=dev.column("user_agent").combine_chunks(),
        dev_first_us=_ts_us(dev.column("first_seen_at")),
    )
    return frame, prof


def _add_devices(frame: Frame, rng: Rng, who: I64, batch: Batch) -> tuple[Frame, pa.Table]:
    """A new cookie for some persons (cleared cookies, a new phone)."""
    pools: Pools = batch.pools
    n = len(who)
    d_type = rng.choice(np.array([0, 1, 2], dtype=np.int64), size=n, p=[0.4, 0.5, 0.1])
    ua = take(pools.user_agent.values, pools.user_agent.sample(rng, d_type))
    anon = uuid4_strings(rng, n)
    first = batch.start_us + (rng.random(n) * (batch.end_us - batch.start_us) * 0.5).astype(
        np.int64
    )
    person = np.concatenate([frame.dev_person, who])
    order = np.argsort(person, kind="stable")
    merged = Frame(
        **{
            **frame.__dict__,
            "dev_person": person[order],
            "dev_anon": take(pa.concat_arrays([frame.dev_anon, anon]), order),
            "dev_type": np.concatenate([frame.dev_type, d_type])[order],
            "dev_ua": take(pa.concat_arrays([frame.dev_ua, ua]), order),
            "dev_first_us": np.concatenate([frame.dev_first_us, first])[order],
        }
    )
    truth = pa.table(
        {
            "person_id": take(frame.person_id, who),
            "anonymous_id": anon,
            "device_type": take(strings(list(DEVICE_NAMES)), d_type),
            "user_agent": ua,
            "first_seen_at": timestamps(first),
            "_batch_id": const(batch.id, n),
        }
    )
    return merged, truth


CRM_CHANGES = ("moved", "new_phone", "new_email", "surname", "loyalty_card", "deleted")


def crm_changes(
    raw: duckdb.DuckDBPyConnection,
    batch: Batch,
    rng: Rng,
    frame: Frame,
    profile: pa.Table,
    who: I64,
    registry: Registry,
) -> tuple[Rows, TruthPart]:
    """New versions of current CRM records (later ``updated_at``); truth profiles follow."""
    pools = batch.pools
    sel = pa.table({"cid": take(frame.customer_id, who), "pos": pa.array(np.arange(len(who)))})
    raw.register("_cids", sel)
    try:
        cur = raw.sql(
            """
            select * exclude (_loaded_at, _batch_id, pos, cid) from (
                select c.pos, c.cid, t.* from crm.customers t join _cids c on t.customer_id = c.cid
                qualify row_number() over (
                    partition by t.customer_id order by t.updated_at desc, t._loaded_at desc) = 1
            ) order by pos
            """
        ).to_arrow_table()
    finally:
        raw.unregister("_cids")
    if cur.num_rows != len(who):
        raise GenerationError("the raw CRM lacks records the truth file knows; wrong raw file?")
    cols: dict[str, Arr] = {name: cur.column(name).combine_chunks() for name in cur.column_names}
    n = len(who)
    loc = frame.locale[who]
    kind = np.asarray(rng.choice(6, size=n, p=[0.35, 0.2, 0.15, 0.12, 0.12, 0.06]), dtype=np.int64)
    email = take(frame.email, who)
    has_email = np.asarray(email.is_valid(), dtype=bool)
    loyalty = take(profile.column("loyalty_card_number").combine_chunks(), who)
    kind = np.where((kind == 2) & ~has_email, 0, kind)
    kind = np.where((kind == 3) & ~frame.female[who], 0, kind)
    kind = np.where((kind == 4) & np.asarray(loyalty.is_valid(), dtype=bool), 0, kind)
    if n >= 3:  # address, phone and e-mail changes in every batch
        for j, k in enumerate((0, 1, 2)):
            if not (kind == k).any() and (k != 2 or has_email[j]):
                kind[j] = k

    prof = {name: take(profile.column(name).combine_chunks(), who) for name in profile.column_names}
    city, postal, addr = addresses(rng, pools, loc)
    moved = kind == 0
    for c, v in (("city", city), ("postal_code", postal), ("address", addr)):
        cols[c] = where(moved, v, cols[c])
        prof[c] = where(moved, v, prof[c])
    truth = TruthPart()
    ph = np.flatnonzero(kind == 1)
    phones = new_phones(rng, loc[ph], registry)
    cols["phone"] = put(cols["phone"], ph, phones)
    prof["phone"] = put(prof["phone"], ph, phones)
    em = np.flatnonzero(kind == 2)
    domain = take(pools.domain.values, pools.domain.sample(rng, loc[em]))
    local = pc.replace_substring_regex(take(email, em), "@.*$", "")
    emails = unique_emails(
        pc.binary_join_element_wise(local, "@", domain, ""),
        local,
        domain,
        np.arange(len(em), dtype=np.int64) + batch.no * 1000,
        registry,
    )
    cols["email"] = put(cols["email"], em, emails)
    prof["email"] = put(prof["email"], em, emails)
    sur = pools.surname_m.sample(rng, loc)
    cols["last_name"] = where(kind == 3, take(pools.surname_f.values, sur), cols["last_name"])
    ly = np.flatnonzero(kind == 4)
    pid = take(frame.person_id, who)
    person_no = np.asarray(
        pc.cast(pc.utf8_slice_codeunits(take(pid, ly), 1), pa.int64()).to_numpy(), dtype=np.int64
    )
    cards = loyalty_numbers(person_no)
    cols["loyalty_card_number"] = put(cols["loyalty_card_number"], ly, cards)
    prof["loyalty_card_number"] = put(prof["loyalty_card_number"], ly, cards)
    cols["is_deleted"] = pc.or_(cols["is_deleted"], booleans(kind == 5))
    updated = batch.start_us + (rng.random(n) * (batch.end_us - batch.start_us - US_PER_HOUR))
    previous = _ts_us(cols["updated_at"]) + 60 * US_PER_SECOND
    updated = np.minimum(
        np.maximum(updated.astype(np.int64), previous), batch.end_us - US_PER_SECOND
    )
    cols["updated_at"] = timestamps(updated)
    changed = np.flatnonzero(kind != 5)
    prof_cols = [c for c in profile.column_names if c not in ("idx", "locale", "gender",
                                                              "first_name", "last_name", "created_at")]  # fmt: skip
    new_prof = pa.table({c: prof[c] for c in prof_cols}).take(pa.array(changed))
    new_prof = new_prof.set_column(
        new_prof.schema.get_field_index("_batch_id"), "_batch_id", const(batch.id, len(changed))
    )
    truth.add("profiles", new_prof)
    for id_type, idx, values in (
        ("phone", ph, phones),
        ("email", em, emails),
        ("loyalty_card", ly, cards),
    ):
        truth.add(
            "identifiers",
            pa.table(
                {
                    "person_id": take(pid, idx),
                    "id_type": const(id_type, len(idx)),
                    "value": values,
                    "_batch_id": const(batch.id, len(idx)),
                }
            ),
        )
    return Rows("crm", "customers", cols, cols["customer_id"], who), truth


_NEXT_STATUS = {"placed": "paid", "paid": "shipped", "shipped": "delivered"}


def order_updates(raw: duckdb.DuckDBPyConnection, batch: Batch, rng: Rng) -> Rows | None:
    """New versions of open orders (status moves on); earlier versions stay."""
    cur = raw.sql(
        f"""
        select * exclude (_loaded_at, _batch_id, rn) from (
            select *, row_number() over (
                partition by order_id order by updated_at desc, _loaded_at desc) as rn
            from shop.orders where _batch_id < '{batch.id}'
        ) where rn = 1 and status in ('placed', 'paid', 'shipped')
        order by order_id
        """
    ).to_arrow_table()
    if cur.num_rows == 0:
        return None
    n = cur.num_rows
    pick_n = max(1, round(0.4 * n))
    chosen = np.sort(rng.choice(n, size=pick_n, replace=False))
    cur = cur.take(pa.array(chosen))
    cols: dict[str, Arr] = {name: cur.column(name).combine_chunks() for name in cur.column_names}
    status = cols["status"]
    nxt = pc.replace_substring(
        pc.replace_substring(
            pc.replace_substring(status, "shipped", "delivered"), "paid", "shipped"
        ),
        "placed",
        "paid",
    )
    returned = rng.random(pick_n) < 0.05
    cancelled = rng.random(pick_n) < 0.05
    nxt = where(
        returned & np.asarray(pc.equal(status, "shipped").to_numpy(zero_copy_only=False)),
        "returned",
        nxt,
    )
    nxt = where(
        cancelled & np.asarray(pc.equal(status, "placed").to_numpy(zero_copy_only=False)),
        "cancelled",
        nxt,
    )
    cols["status"] = nxt
    at = batch.start_us + (rng.random(pick_n) * (batch.end_us - batch.start_us - US_PER_HOUR))
    previous = _ts_us(cols["updated_at"]) + 60 * US_PER_SECOND
    at = np.minimum(np.maximum(at.astype(np.int64), previous), batch.end_us - US_PER_SECOND)
    cols["updated_at"] = timestamps(at)
    return Rows("shop", "orders", cols, cols["order_id"], np.full(pick_n, -1, dtype=np.int64))


def redeliveries(w: Writer, batch: Batch) -> None:
    """Exact copies of rows of the previous batch, delivered again in this one."""
    if batch.dirty_rate <= 0:
        return
    prev = batch_id(batch.no - 1)
    salt = batch.seed * 1009 + batch.no
    threshold = max(1, round(batch.dirty_rate * 0.05 * 100_000))
    for (schema, table), key in RECORD_KEYS.items():
        names = [c for c, _ in TABLES[schema][table]]
        cols = ", ".join(names)
        loaded = w.loaded_at()
        base = f"select {cols}, {key} as _key from {schema}.{table} where _batch_id = '{prev}'"
        picked = w.raw.sql(
            f"select * from ({base}) where hash(_key, {salt}) % 100000 < {threshold} "
            f"order by hash(_key, {salt}), _key"
        ).to_arrow_table()
        if picked.num_rows == 0:
            picked = w.raw.sql(f"{base} order by hash(_key, {salt}), _key limit 1").to_arrow_table()
        if picked.num_rows == 0:
            continue
        keys = picked.column("_key").combine_chunks()
        body = picked.drop(["_key"])
        n = body.num_rows
        body = body.append_column("_loaded_at", timestamps(np.full(n, loaded, dtype=np.int64)))
        body = body.append_column("_batch_id", const(batch.id, n))
        w.raw_insert(f"{schema}.{table}", body)
        rows = Rows(schema, table, {}, keys, np.full(n, -1, dtype=np.int64))
        w.truth_one("dirt", dirt_table(rows, np.arange(n), "*", "duplicate_later_batch", batch.id))


def _share(rng: Rng, n_exist: int, name: str) -> I64:
    share, minimum = EXISTING_SHARE[name]
    k = min(n_exist, max(minimum, round(share * n_exist)))
    return np.sort(rng.choice(n_exist, size=k, replace=False)).astype(np.int64)


def existing_activity(
    w: Writer,
    batch: Batch,
    counters: Counters,
    registry: Registry,
    tick: Callable[[int], None],
) -> None:
    """A day in the life of persons from earlier batches."""
    ids = (
        w.truth.sql(
            f"select person_id from persons where _batch_id < '{batch.id}' order by person_id"
        )
        .to_arrow_table()
        .column(0)
        .combine_chunks()
    )
    n_exist = len(ids)
    if n_exist == 0:
        return
    rng = batch.rng(2, 0)
    chosen = {name: _share(rng, n_exist, name) for name in EXISTING_SHARE}
    union = np.unique(np.concatenate(list(chosen.values())))
    for c, start in enumerate(range(0, len(union), CHUNK)):
        part = union[start : start + CHUNK]
        frame, profile = load_frame(w.truth, take(ids, part), batch)
        n = len(part)

        def rng_k(k: int, c: int = c) -> Rng:
            return batch.rng(3, c, k)

        member = {name: np.isin(part, sel) for name, sel in chosen.items()}
        r = rng_k(1)
        web = member["web"]
        new_dev = np.flatnonzero(web & (r.random(n) < 0.1))
        if len(new_dev) == 0 and web.any():
            new_dev = np.flatnonzero(web)[:1]
        frame, dev_truth = _add_devices(frame, r, new_dev, batch)
        w.truth_one("devices", dev_truth)
        w.truth_one(
            "identifiers",
            pa.table(
                {
                    "person_id": dev_truth.column("person_id"),
                    "id_type": const("anonymous_id", dev_truth.num_rows),
                    "value": dev_truth.column("anonymous_id"),
                    "_batch_id": const(batch.id, dev_truth.num_rows),
                }
            ),
        )
        crm_who = np.flatnonzero(member["crm"])
        if len(crm_who):
            rows, truth = crm_changes(w.raw, batch, rng_k(9), frame, profile, crm_who, registry)
            w.truth_out(truth)
            w.dirty(rows, frame, rng_k(10))
        emit_activity(
            w,
            batch,
            counters,
            frame,
            rng_k,
            sessions=np.where(web, 1 + r.poisson(0.8, n), 0).astype(np.int64),
            signup=np.zeros(n, dtype=bool),
            n_orders=member["orders"].astype(np.int64),
            n_messages=np.where(member["messages"], 1 + r.poisson(0.5, n), 0).astype(np.int64),
            requests=member["requests"],
            consents_new=False,
            n_consent_changes=member["consents"].astype(np.int64),
        )
        tick(1)


# ---------------------------------------------------------------------- batches
