"""What persons do: browse, order, receive messages, consent, file requests.

Each function takes a frame of persons with per-person counts and returns
``Rows`` for one raw table (clean values; dirt comes later) plus, where the
truth needs more than the record mapping, truth rows.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cdp.generator.model import Batch, Frame, Rows, TruthPart
from cdp.generator.pools import (
    APP,
    BOT,
    CAMPAIGNS,
    CURRENCY,
    DEVICE_NAMES,
    JURISDICTION,
    REFERRERS,
    RU,
    UTM_MEDIUMS,
    UTM_SOURCES,
)
from cdp.generator.vec import (
    I64,
    US_PER_DAY,
    US_PER_HOUR,
    US_PER_MINUTE,
    US_PER_SECOND,
    Arr,
    Bool,
    Rng,
    booleans,
    choose,
    concat,
    const,
    decimal_cents,
    ensure_coverage,
    hex_strings,
    int32s,
    int_str,
    nulls,
    padded,
    pick,
    put,
    repeat_index,
    strings,
    take,
    timestamps,
    uuid4_strings,
    where,
)

# --------------------------------------------------------------------------- web

EVENT_TYPES: tuple[str, ...] = (
    "page_view",
    "product_view",
    "add_to_cart",
    "remove_from_cart",
    "checkout_started",
    "search",
    "login",
    "signup",
    "form_submit",
)
PAGE_VIEW, PRODUCT_VIEW, ADD, REMOVE, CHECKOUT, SEARCH, LOGIN, SIGNUP, FORM = range(9)
_TYPE_WEIGHTS = (0.34, 0.30, 0.12, 0.03, 0.05, 0.10, 0.0, 0.0, 0.03)
_RU_FIRST_OCTETS = np.array(
    [
        5,
        31,
        37,
        46,
        77,
        78,
        79,
        85,
        87,
        89,
        91,
        92,
        93,
        94,
        95,
        109,
        176,
        178,
        185,
        188,
        195,
        212,
        217,
    ]
)
_HEX16 = strings([f"{i:x}" for i in range(65536)])


def _ips(rng: Rng, n: int, locale: I64) -> Arr:
    """IPv4 (Russian-looking blocks for Russian visitors) or IPv6 addresses."""
    o1 = np.where(
        locale == RU,
        _RU_FIRST_OCTETS[rng.integers(0, len(_RU_FIRST_OCTETS), n)],
        rng.integers(2, 223, n),
    )
    v4 = pc.binary_join_element_wise(
        int_str(o1),
        int_str(rng.integers(0, 256, n)),
        int_str(rng.integers(0, 256, n)),
        int_str(rng.integers(1, 255, n)),
        ".",
    )
    groups = [take(_HEX16, rng.integers(0, 65536, n)) for _ in range(5)]
    prefix = take(strings(["2a00", "2a02", "2a03", "2001", "2a0c"]), rng.integers(0, 5, n))
    v6 = pc.binary_join_element_wise(prefix, *groups, ":")
    v6 = concat(v6, "::", take(_HEX16, rng.integers(1, 65536, n)))  # 8 groups, one of them 0
    return where(rng.random(n) < 0.8, v4, v6)


def _price_text(cents: I64) -> Arr:
    return concat(int_str(cents // 100), ".", padded(cents % 100, 2))


def web_events(batch: Batch, rng: Rng, frame: Frame, n_sessions: I64, signup_session: Bool) -> Rows:
    """Sessions of page views etc.; anonymous until the visitor logs in / signs up."""
    pools = batch.pools
    products = pools.products
    end = batch.end_us
    dev_start, dev_count = frame.dev_start, frame.dev_count
    sp, spos = repeat_index(n_sessions)
    n_s = len(sp)
    dev = dev_start[sp] + (rng.random(n_s) * dev_count[sp]).astype(np.int64)
    is_signup = signup_session[sp] & (spos == 0)
    dev = np.where(is_signup, dev_start[sp], dev)
    hi = end - 2 * US_PER_HOUR
    lo = np.minimum(np.maximum(frame.start_us[sp], frame.dev_first_us[dev]), hi)
    s_start = lo + (rng.random(n_s) * (hi - lo)).astype(np.int64)
    signup_start = frame.signup_us[sp] - rng.integers(60, 900, n_s) * US_PER_SECOND
    s_start = np.where(is_signup, np.maximum(signup_start, frame.start_us[sp]), s_start)
    d_type = frame.dev_type[dev]
    after_signup = s_start >= frame.signup_us[sp] - 15 * US_PER_MINUTE
    logged = ~is_signup & after_signup & ((d_type == APP) | (rng.random(n_s) < 0.8))
    explicit_login = logged & (rng.random(n_s) < 0.35)
    login_pos = np.where(is_signup | explicit_login, 1, np.where(logged, 0, 1 << 30))
    n_ev = np.minimum(rng.geometric(0.17, n_s), 40)
    n_ev = np.where(
        is_signup, np.maximum(n_ev, 3), np.where(explicit_login, np.maximum(n_ev, 2), n_ev)
    )

    es, epos = repeat_index(n_ev)
    n_e = len(es)
    ep = sp[es]
    gaps = rng.exponential(40 * US_PER_SECOND, n_e).astype(np.int64)
    gaps[epos == 0] = 0
    cum = np.cumsum(gaps)
    first_of = np.cumsum(n_ev) - n_ev
    event_at = s_start[es] + cum - cum[first_of][es]
    etype = pick(rng, n_e, _TYPE_WEIGHTS)
    landing = np.where(rng.random(n_e) < 0.3, PRODUCT_VIEW, PAGE_VIEW)
    etype = np.where(epos == 0, landing, etype)
    etype = np.where((epos == 1) & is_signup[es], SIGNUP, etype)
    etype = np.where((epos == 1) & explicit_login[es], LOGIN, etype)
    etype = ensure_coverage(rng, etype, len(EVENT_TYPES), eligible=epos > 1)
    is_app = d_type[es] == APP
    latency = rng.lognormal(np.log(0.3 * US_PER_SECOND), 0.8, n_e).astype(np.int64)
    queued = is_app & (rng.random(n_e) < 0.08)
    latency = np.where(queued, latency + rng.integers(1, 30 * 60, n_e) * US_PER_SECOND, latency)
    event_at = np.minimum(event_at, end - 2 * US_PER_SECOND)
    received = np.minimum(event_at + latency, end - US_PER_SECOND)

    loc = frame.locale[ep]
    pages = pools.pages
    site = np.where(is_app, 2, np.minimum(loc, 1))
    sku_idx = products.sample(rng, n_e)
    campaign = rng.integers(0, len(CAMPAIGNS), n_e)
    # page index: fixed pages 0..11 (see pools.FIXED_PAGES), then catalog, promo, products
    pv = np.choose(
        pick(rng, n_e, (0.3, 0.3, 0.1, 0.05, 0.08, 0.07, 0.05, 0.05)),
        [
            np.zeros(n_e, dtype=np.int64),
            pages.catalog_offset + products.cat_idx[sku_idx],
            np.full(n_e, 1),
            np.full(n_e, 2),
            np.full(n_e, 3),
            pages.promo_offset + campaign,
            np.full(n_e, 4),
            np.full(n_e, 5),
        ],
    )
    product_page = pages.product_offset + sku_idx
    form_page = np.where(rng.random(n_e) < 0.5, 10, 11)
    page = np.choose(etype, [pv, product_page, product_page, 5, 6, 7, 8, 9, form_page])
    page_url = take(pages.urls, site * pages.n_paths + page)
    utm_idx = np.flatnonzero((epos == 0) & (rng.random(n_e) < 0.25))
    n_u = len(utm_idx)
    utm = concat(
        take(page_url, utm_idx),
        "?utm_source=",
        take(strings(list(UTM_SOURCES)), rng.integers(0, len(UTM_SOURCES), n_u)),
        "&utm_medium=",
        take(strings(list(UTM_MEDIUMS)), rng.integers(0, len(UTM_MEDIUMS), n_u)),
        "&utm_campaign=",
        take(strings(list(CAMPAIGNS)), campaign[utm_idx]),
    )
    page_url = put(page_url, utm_idx, utm)
    ext = np.where(rng.random(n_e) < 0.6, rng.integers(1, len(REFERRERS) + 1, n_e), 0)
    ext = np.where(is_app, 0, ext)
    ref_pool = pa.concat_arrays([nulls(1), strings(list(REFERRERS))])
    first_ev = np.flatnonzero(epos == 0)
    referrer = take(page_url, np.maximum(np.arange(n_e) - 1, 0))
    referrer = put(referrer, first_ev, take(ref_pool, ext[first_ev]))

    ip = take(_ips(rng, n_s, frame.locale[sp]), es)
    is_product = (etype == PRODUCT_VIEW) | (etype == ADD) | (etype == REMOVE)
    search_idx = np.flatnonzero(etype == SEARCH)
    queries = take(
        pools.search.values,
        pools.search.sample(rng, (loc[search_idx] != RU).astype(np.int64)),
    )
    search_query = put(nulls(n_e), search_idx, queries)
    base_pool = strings(
        [
            f'{{"device": "{d}", "lang": "{lang}", "seq": '
            for d in DEVICE_NAMES
            for lang in ("ru", "en")
        ]
    )
    base = take(base_pool, d_type[es] * 2 + (loc != RU))
    extra_pool = pa.concat_arrays([strings(["", ', "form": "profile"']), products.json_extra])
    extra = np.where(is_product, 2 + sku_idx, np.where(etype == FORM, 1, 0))
    props = concat(base, int_str(epos), take(extra_pool, extra), "}")
    add_idx = np.flatnonzero(etype == ADD)
    props = put(
        props,
        add_idx,
        concat(
            pc.utf8_slice_codeunits(take(props, add_idx), 0, -1),
            ', "quantity": ',
            int_str(1 + rng.poisson(0.3, len(add_idx))),
            "}",
        ),
    )
    props = put(
        props,
        search_idx,
        concat(
            pc.utf8_slice_codeunits(take(props, search_idx), 0, -1),
            ', "results": ',
            int_str(rng.integers(0, 240, len(search_idx))),
            "}",
        ),
    )
    customer = where(epos >= login_pos[es], take(frame.customer_id, ep), None)
    event_id = uuid4_strings(rng, n_e)
    cols = {
        "event_id": event_id,
        "anonymous_id": take(frame.dev_anon, dev[es]),
        "customer_id": customer,
        "event_type": take(strings(list(EVENT_TYPES)), etype),
        "event_at": timestamps(event_at),
        "received_at": timestamps(received),
        "page_url": page_url,
        "referrer_url": referrer,
        "ip_address": ip,
        "user_agent": take(frame.dev_ua, dev[es]),
        "product_sku": take(products.sku_or_null, np.where(is_product, sku_idx + 1, 0)),
        "search_query": search_query,
        "properties": props,
    }
    return Rows("web", "events", cols, event_id, ep)


def bot_events(batch: Batch, rng: Rng, n_sessions: int) -> Rows:
    """Crawler traffic: no person behind it (truth person_id is null)."""
    pools = batch.pools
    end = batch.end_us
    n_ev = rng.integers(3, 30, n_sessions)
    es, epos = repeat_index(n_ev)
    n_e = len(es)
    s_start = batch.start_us + (rng.random(n_sessions) * (end - batch.start_us - US_PER_HOUR))
    event_at = s_start.astype(np.int64)[es] + epos * rng.integers(1, 5, n_e) * US_PER_SECOND
    sku_idx = pools.products.sample(rng, n_e)
    product = rng.random(n_e) < 0.6
    pages = pools.pages
    site = rng.integers(0, 2, n_sessions)[es]
    page = np.where(product, pages.product_offset + sku_idx, 0)
    ua_idx = pools.user_agent.sample(rng, np.full(n_sessions, BOT, dtype=np.int64))
    event_id = uuid4_strings(rng, n_e)
    cols = {
        "event_id": event_id,
        "anonymous_id": take(uuid4_strings(rng, n_sessions), es),
        "customer_id": nulls(n_e),
        "event_type": where(product, "product_view", "page_view"),
        "event_at": timestamps(event_at),
        "received_at": timestamps(event_at + 150_000),
        "page_url": take(pages.urls, site * pages.n_paths + page),
        "referrer_url": nulls(n_e),
        "ip_address": take(_ips(rng, n_sessions, np.ones(n_sessions, dtype=np.int64)), es),
        "user_agent": take(take(pools.user_agent.values, ua_idx), es),
        "product_sku": where(product, take(pools.products.sku, sku_idx), None),
        "search_query": nulls(n_e),
        "properties": const('{"device": "bot"}', n_e),
    }
    return Rows("web", "events", cols, event_id, np.full(n_e, -1, dtype=np.int64))


# ------------------------------------------------------------------------- shop

ORDER_STATUSES: tuple[str, ...] = (
    "placed",
    "paid",
    "shipped",
    "delivered",
    "cancelled",
    "returned",
)
PLACED, PAID, SHIPPED, DELIVERED, CANCELLED, RETURNED = range(6)
ORDER_CHANNELS: tuple[str, ...] = ("web", "app", "store", "call_centre")
PAYMENTS: tuple[str, ...] = ("card", "sbp", "cash", "invoice", "gift_card", "installments")


def order_ids(nos: I64) -> Arr:
    return concat("SO-", padded(nos, 10))


def orders(
    batch: Batch, rng: Rng, frame: Frame, n_orders: I64, order_nos: I64
) -> tuple[Rows, Rows, TruthPart]:
    """Orders with items; some guest checkouts; earlier versions of some orders."""
    pools = batch.pools
    products = pools.products
    end = batch.end_us
    op = np.repeat(np.arange(len(frame)), n_orders)
    n = len(op)
    guest = rng.random(n) < 0.1
    lo = np.where(guest, frame.start_us[op], np.maximum(frame.start_us[op], frame.signup_us[op]))
    hi = end - US_PER_HOUR
    lo = np.minimum(lo, hi)
    ordered = lo + (rng.random(n) * (hi - lo)).astype(np.int64)
    has_app = np.zeros(len(frame), dtype=bool)
    has_app[frame.dev_person[frame.dev_type == APP]] = True
    channel = pick(rng, n, (0.5, 0.25, 0.2, 0.05))
    channel = np.where((channel == 1) & ~has_app[op], 0, channel)
    channel = np.where(guest & (channel == 1), 0, channel)
    channel = ensure_coverage(rng, channel, len(ORDER_CHANNELS))
    is_store = channel == 2
    alt = take(frame.alt_customer_id, op)
    use_alt = is_store & (rng.random(n) < 0.5) & np.asarray(alt.is_valid(), dtype=bool)
    customer = where(use_alt, alt, take(frame.customer_id, op))
    customer = where(guest, None, customer)
    email = take(frame.email, op)
    phone = take(frame.phone, op)
    online = channel < 2
    email = where(online | (rng.random(n) < 0.15), email, None)
    phone = where(~online | (rng.random(n) < 0.7), phone, None)

    # items
    n_items = 1 + np.minimum(rng.poisson(1.5, n), 12)
    io, line = repeat_index(n_items)
    sku_idx = products.sample(rng, len(io))
    qty = 1 + pick(rng, len(io), (0.8, 0.15, 0.05))
    rub = products.price_cents[sku_idx]
    loc_i = frame.locale[op][io]
    price = np.where(loc_i == RU, rub, (rub // 100 // 50) * 50 + 99)
    discount = rng.random(len(io)) < 0.15
    price = np.where(discount, price * (100 - rng.integers(10, 31, len(io))) // 100, price)
    line_total = price * qty
    total = np.bincount(io, weights=line_total, minlength=n).astype(np.int64)
    fee = np.where(online & (rng.random(n) < 0.4), np.where(frame.locale[op] == RU, 29_900, 499), 0)
    total = total + fee
    oid = order_ids(order_nos)

    # status and versions
    age = end - ordered
    final = pick(rng, n, (0.84, 0.10, 0.06))
    final_status = np.choose(final, [DELIVERED, CANCELLED, RETURNED])
    young = np.where(rng.random(n) < 0.5, PLACED, PAID)
    mid = np.where(rng.random(n) < 0.4, PAID, SHIPPED)
    status = np.where(age < US_PER_DAY, young, np.where(age < 4 * US_PER_DAY, mid, final_status))
    status = ensure_coverage(rng, status, len(ORDER_STATUSES), eligible=age >= 4 * US_PER_DAY)
    step = np.minimum(age, rng.integers(1, 10 * 24, n) * US_PER_HOUR)
    updated = ordered + np.where(status == PLACED, rng.integers(0, 60, n) * US_PER_SECOND, step)
    updated = np.minimum(updated, end - US_PER_SECOND)
    payment = pick(rng, n, (0.55, 0.17, 0.1, 0.03, 0.05, 0.1))
    payment = np.where(is_store & (rng.random(n) < 0.5), 2, payment)
    store_id = where(is_store, concat("STORE-", padded(rng.integers(1, 250, n), 3)), None)
    other_addr = rng.random(n) < 0.1
    street = take(pools.street.values, pools.street.sample(rng, frame.locale[op]))
    alt_address = concat(street, ", ", int_str(rng.integers(1, 120, n)))
    address = where(other_addr, alt_address, take(frame.address, op))
    cols = {
        "order_id": oid,
        "customer_id": customer,
        "email": email,
        "phone": phone,
        "ordered_at": timestamps(ordered),
        "status": take(strings(list(ORDER_STATUSES)), status),
        "total_amount": decimal_cents(total),
        "currency": take(strings(list(CURRENCY)), frame.locale[op]),
        "channel": take(strings(list(ORDER_CHANNELS)), channel),
        "store_id": store_id,
        "delivery_address": where(is_store, None, address),
        "delivery_city": where(is_store, None, take(frame.city, op)),
        "payment_method": take(strings(list(PAYMENTS)), payment),
        "updated_at": timestamps(updated),
    }
    person = op
    if batch.no == 1:
        # the export still holds an earlier version of some orders
        hist = np.flatnonzero((status != PLACED) & (rng.random(n) < 0.3))
        old = {c: take(a, hist) for c, a in cols.items()}
        old["status"] = const("placed", len(hist))
        old["updated_at"] = timestamps(
            ordered[hist] + rng.integers(5, 600, len(hist)) * US_PER_SECOND
        )
        cols = {c: pa.concat_arrays([old[c], cols[c]]) for c in cols}
        person = np.concatenate([op[hist], op])
    order_rows = Rows("shop", "orders", cols, cols["order_id"], person)
    item_oid = take(oid, io)
    item_key = concat(item_oid, "#", int_str(line + 1))
    item_cols = {
        "order_id": item_oid,
        "line_number": int32s(line + 1),
        "product_sku": take(products.sku, sku_idx),
        "product_name": take(products.name, sku_idx),
        "category": take(products.category, sku_idx),
        "quantity": int32s(qty),
        "unit_price": decimal_cents(price),
    }
    items = Rows("shop", "order_items", item_cols, item_key, op[io])
    truth = TruthPart()
    truth.add("records", records(batch, "shop", "orders", oid, frame, op))
    truth.add("records", records(batch, "shop", "order_items", item_key, frame, op[io]))
    return order_rows, items, truth


# -------------------------------------------------------------------- messaging

MESSAGE_CHANNELS: tuple[str, ...] = ("email", "sms", "push", "messenger")
MESSAGE_EVENTS: tuple[str, ...] = (
    "sent",
    "delivered",
    "opened",
    "clicked",
    "bounced",
    "unsubscribed",
    "complained",
)


def messages(batch: Batch, rng: Rng, frame: Frame, n_messages: I64, msg_nos: I64) -> Rows:
    """Campaign messages and their delivery funnel, to the channel's address."""
    end = batch.end_us
    mp = np.repeat(np.arange(len(frame)), n_messages)
    n = len(mp)
    has_email = np.asarray(frame.email.is_valid(), dtype=bool)[mp]
    has_phone = np.asarray(frame.phone.is_valid(), dtype=bool)[mp]
    has_push = np.asarray(frame.push_token.is_valid(), dtype=bool)[mp]
    w = np.stack([has_email * 0.55, has_phone * 0.15, has_push * 0.2, has_phone * 0.1], axis=1)
    cum = np.cumsum(w, axis=1) / np.maximum(w.sum(axis=1), 1e-9)[:, None]
    channel = np.minimum((rng.random(n)[:, None] >= cum).sum(axis=1), 3).astype(np.int64)
    lo = np.maximum(frame.start_us[mp], frame.signup_us[mp])
    hi = end - US_PER_HOUR
    lo = np.minimum(lo, hi)
    sent = lo + (rng.random(n) * (hi - lo)).astype(np.int64)
    bounced = rng.random(n) < 0.04
    delivered = ~bounced
    open_p = np.choose(channel, [0.28, 0.0, 0.15, 0.5])
    opened = delivered & (rng.random(n) < open_p)
    clicked = opened & (rng.random(n) < 0.22)
    unsub = opened & (channel == 0) & (rng.random(n) < 0.02)
    complained = opened & (channel == 0) & ~unsub & (rng.random(n) < 0.004)
    flags = np.stack(
        [np.ones(n, dtype=bool), delivered, opened, clicked, bounced, unsub, complained]
    )
    if n > 20:  # small data sets still show every event type
        for k in range(1, len(MESSAGE_EVENTS)):
            if flags[k].any():
                continue
            m = int(rng.integers(0, n))
            if k == 4:  # bounced instead of delivered
                flags[1:, m] = False
            else:
                flags[1, m] = True
                flags[4, m] = False
                if k != 1:
                    flags[2, m] = True
            flags[k, m] = True
    t_open = sent + rng.lognormal(np.log(2 * US_PER_HOUR), 1.2, n).astype(np.int64)
    t_click = t_open + rng.integers(5, 300, n) * US_PER_SECOND
    offsets = np.stack(
        [
            sent,
            sent + rng.integers(1, 60, n) * US_PER_SECOND,
            t_open,
            t_click,
            sent + rng.integers(1, 30, n) * US_PER_SECOND,
            t_open + rng.integers(10, 600, n) * US_PER_SECOND,
            t_open + rng.integers(30, 900, n) * US_PER_SECOND,
        ]
    )
    msg_idx, ev_type = np.nonzero(flags.T)
    at = np.minimum(offsets[ev_type, msg_idx], end - US_PER_SECOND)
    ep = mp[msg_idx]
    ch = channel[msg_idx]
    recipient = choose(
        ch,
        take(frame.email, ep),
        take(frame.phone, ep),
        take(frame.push_token, ep),
        take(frame.phone, ep),
    )
    known = rng.random(n)[msg_idx] < 0.9
    month = pc.strftime(timestamps(sent), format="%Y%m")
    campaign = concat("CMP-", month, "-", padded(rng.integers(1, 13, n), 2))
    transactional = rng.random(n) < 0.15
    campaign = where(transactional, concat("TRX-", take(strings(["ORDER", "DELIVERY", "OTP"]),
                                                          rng.integers(0, 3, n))), campaign)  # fmt: skip
    mev = uuid4_strings(rng, len(msg_idx))
    cols = {
        "message_event_id": mev,
        "message_id": take(concat("MSG-", padded(msg_nos, 10)), msg_idx),
        "customer_id": where(known, take(frame.customer_id, ep), None),
        "recipient": recipient,
        "channel": take(strings(list(MESSAGE_CHANNELS)), ch),
        "campaign_id": take(campaign, msg_idx),
        "event_type": take(strings(list(MESSAGE_EVENTS)), ev_type),
        "event_at": timestamps(at),
    }
    return Rows("messaging", "message_events", cols, mev, ep)


# ---------------------------------------------------------------------- privacy

CONSENT_CHANNELS: tuple[str, ...] = (
    "web_form",
    "mobile_app",
    "store",
    "call_centre",
    "email_link",
    "sms_reply",
)
WEB_FORM, MOBILE_APP, STORE, CALL_CENTRE, EMAIL_LINK, SMS_REPLY = range(6)
SUBJECT_TYPES: tuple[str, ...] = ("customer_id", "email", "phone", "anonymous_id")
S_CUSTOMER, S_EMAIL, S_PHONE, S_ANON = range(4)
# The consent purposes the simulated business asks for, in the order of the index names below
# and of the rates here and in subject_requests. A generator parameter, not the catalogue: a
# purpose added to seeds/purposes.csv is not simulated until it is added here with its rates,
# so a seed gives the same landing zone whatever the catalogue holds. pytests/test_generator.py
# fails when one of these is not a consent purpose of the catalogue (cdp.catalogue).
SIMULATED_PURPOSES: tuple[str, ...] = (
    "analytics",
    "personalisation",
    "email_marketing",
    "sms_marketing",
    "push_marketing",
    "partner_sharing",
)
ANALYTICS, PERSONALISATION, EMAIL_MKT, SMS_MKT, PUSH_MKT, PARTNER = range(6)
_EVIDENCE_PREFIX = ("WF-", "APP-", "SCAN-", "REC-", "EML-", "SMS-")
_SIGNUP_GRANT_P = np.array([0.85, 0.6, 0.5, 0.35, 0.3, 0.12])


def _policy_version(batch: Batch, at: I64) -> Arr:
    """The consent text in force: a new minor version roughly every seven months."""
    epoch = (batch.reference_day - 3 * 365) * US_PER_DAY
    k = np.clip((at - epoch) // (210 * US_PER_DAY), 0, 20)
    return concat("v", int_str(1 + k // 2), ".", int_str(k % 2))


def _subject(frame: Frame, person: I64, stype: I64, dev: I64) -> tuple[I64, Arr]:
    """The identifier of ``stype``; falls back to customer_id when the person has none."""
    email = take(frame.email, person)
    phone = take(frame.phone, person)
    has_e = np.asarray(email.is_valid(), dtype=bool)
    has_p = np.asarray(phone.is_valid(), dtype=bool)
    stype = np.where((stype == S_EMAIL) & ~has_e, S_CUSTOMER, stype)
    stype = np.where((stype == S_PHONE) & ~has_p, S_CUSTOMER, stype)
    stype = np.where((stype == S_ANON) & (dev < 0), S_CUSTOMER, stype)
    anon = take(frame.dev_anon, np.maximum(dev, 0)) if len(frame.dev_anon) else nulls(len(person))
    value = choose(stype, take(frame.customer_id, person), email, phone, anon)
    return stype, value


def _consent_rows(
    batch: Batch,
    rng: Rng,
    frame: Frame,
    person: I64,
    purpose: I64,
    withdraw: Bool,
    channel: I64,
    stype: I64,
    dev: I64,
    at: I64,
) -> tuple[Rows, TruthPart]:
    stype, subject = _subject(frame, person, stype, dev)
    channel = np.where((stype == S_ANON) & (channel > MOBILE_APP), WEB_FORM, channel)
    n = len(person)
    at = np.minimum(at, batch.end_us - US_PER_SECOND)
    ceid = uuid4_strings(rng, n)
    prefix = take(strings(list(_EVIDENCE_PREFIX)), channel)
    evidence = concat(prefix, pc.utf8_upper(hex_strings(rng, n, 12)))
    purpose_code = take(strings(list(SIMULATED_PURPOSES)), purpose)
    action = where(withdraw, "withdraw", "grant")
    cols = {
        "consent_event_id": ceid,
        "subject_id_type": take(strings(list(SUBJECT_TYPES)), stype),
        "subject_id": subject,
        "purpose_code": purpose_code,
        "action": action,
        "channel": take(strings(list(CONSENT_CHANNELS)), channel),
        "policy_version": _policy_version(batch, at),
        "evidence_ref": evidence,
        "captured_at": timestamps(at),
    }
    rows = Rows("privacy", "consent_events", cols, ceid, person)
    truth = TruthPart()
    w = np.flatnonzero(withdraw)
    truth.add(
        "withdrawals",
        pa.table(
            {
                "person_id": take(frame.person_id, person[w]),
                "purpose_code": take(purpose_code, w),
                "consent_event_id": take(ceid, w),
                "subject_id_type": take(cols["subject_id_type"], w),
                "subject_id": take(subject, w),
                "channel": take(cols["channel"], w),
                "captured_at": timestamps(at[w]),
                "_batch_id": const(batch.id, len(w)),
                "row_index": pa.array(w, type=pa.int64()),
            }
        ),
    )
    return rows, truth


def _withdraw_route(rng: Rng, purpose: I64) -> tuple[I64, I64]:
    """How a withdrawal usually arrives: (channel, subject id type) per purpose."""
    n = len(purpose)
    other_cc = rng.random(n) < 0.2
    channel = np.select(
        [purpose == EMAIL_MKT, purpose == SMS_MKT, purpose == PUSH_MKT],
        [EMAIL_LINK, SMS_REPLY, MOBILE_APP],
        np.where(other_cc, CALL_CENTRE, WEB_FORM),
    )
    stype = np.select(
        [channel == EMAIL_LINK, channel == SMS_REPLY, channel == CALL_CENTRE],
        [S_EMAIL, S_PHONE, S_PHONE],
        S_CUSTOMER,
    )
    return channel, stype


def consents_initial(batch: Batch, rng: Rng, frame: Frame) -> tuple[Rows, TruthPart]:
    """Sign-up consents, cookie banners, newsletter forms; later withdrawals and re-grants."""
    n = len(frame)
    end = batch.end_us
    has_app = np.zeros(n, dtype=bool)
    has_app[frame.dev_person[frame.dev_type == APP]] = True
    p = np.tile(_SIGNUP_GRANT_P, (n, 1))
    p[:, PUSH_MKT] = np.where(has_app, 0.5, 0.03)
    gp, g_purpose = np.nonzero(rng.random((n, len(SIMULATED_PURPOSES))) < p)
    ch_person = pick(rng, n, (0.55, 0.2, 0.2, 0.05))
    ch_person = np.where((ch_person == MOBILE_APP) & ~has_app, WEB_FORM, ch_person)
    g_channel = ch_person[gp]
    u = rng.random(len(gp))
    g_stype = np.select(
        [g_channel == STORE, g_channel == CALL_CENTRE],
        [np.where(u < 0.6, S_PHONE, S_CUSTOMER), np.full(len(gp), S_PHONE)],
        np.where(u < 0.15, S_EMAIL, S_CUSTOMER),
    )
    g_at = frame.signup_us[gp] + rng.integers(0, 120, len(gp)) * US_PER_SECOND
    g_dev = np.full(len(gp), -1)

    # cookie banner / app consent screen, per device
    n_dev = len(frame.dev_person)
    dsel = np.flatnonzero(rng.random(n_dev) < 0.5)
    with_pers = dsel[rng.random(len(dsel)) < 0.6]
    c_dev = np.concatenate([dsel, with_pers])
    c_purpose = np.r_[np.full(len(dsel), ANALYTICS), np.full(len(with_pers), PERSONALISATION)]
    c_person = frame.dev_person[c_dev]
    c_channel = np.where(frame.dev_type[c_dev] == APP, MOBILE_APP, WEB_FORM)
    c_at = frame.dev_first_us[c_dev] + rng.integers(1, 60, len(c_dev)) * US_PER_SECOND

    # newsletter sign-up with an e-mail address
    has_email = np.asarray(frame.email.is_valid(), dtype=bool)
    nl = np.flatnonzero(has_email & (rng.random(n) < 0.15))
    nl_at = frame.start_us[nl] + (rng.random(len(nl)) * (end - frame.start_us[nl])).astype(np.int64)

    person = np.concatenate([gp, c_person, nl])
    purpose = np.concatenate([g_purpose, c_purpose, np.full(len(nl), EMAIL_MKT)])
    channel = np.concatenate([g_channel, c_channel, np.full(len(nl), WEB_FORM)])
    stype = np.concatenate([g_stype, np.full(len(c_dev), S_ANON), np.full(len(nl), S_EMAIL)])
    dev = np.concatenate([g_dev, c_dev, np.full(len(nl), -1)])
    at = np.concatenate([g_at, c_at, nl_at])
    is_cookie = stype == S_ANON

    # withdrawals (and a few re-grants after them)
    room = end - at > 3 * US_PER_HOUR
    wsel = np.flatnonzero(room & (rng.random(len(at)) < np.where(is_cookie, 0.06, 0.12)))
    w_channel, w_stype = _withdraw_route(rng, purpose[wsel])
    w_channel = np.where(is_cookie[wsel], channel[wsel], w_channel)
    w_stype = np.where(is_cookie[wsel], S_ANON, w_stype)
    w_at = at[wsel] + US_PER_HOUR + (rng.random(len(wsel)) * (end - at[wsel] - 2 * US_PER_HOUR))
    w_at = w_at.astype(np.int64)
    rsel = np.flatnonzero((end - w_at > 3 * US_PER_HOUR) & (rng.random(len(wsel)) < 0.15))
    r_at = w_at[rsel] + US_PER_HOUR + (rng.random(len(rsel)) * (end - w_at[rsel] - 2 * US_PER_HOUR))

    all_person = np.concatenate([person, person[wsel], person[wsel][rsel]])
    withdraw = np.r_[
        np.zeros(len(person), bool), np.ones(len(wsel), bool), np.zeros(len(rsel), bool)
    ]
    order = np.argsort(all_person, kind="stable")
    cols = (
        all_person,
        np.concatenate([purpose, purpose[wsel], purpose[wsel][rsel]]),
        withdraw,
        np.concatenate([channel, w_channel, np.full(len(rsel), WEB_FORM)]),
        np.concatenate([stype, w_stype, np.where(w_stype[rsel] == S_ANON, S_ANON, S_CUSTOMER)]),
        np.concatenate([dev, dev[wsel], dev[wsel][rsel]]),
        np.concatenate([at, w_at, r_at.astype(np.int64)]),
    )
    p_, pu, wd, ch, st, dv, t = (c[order] for c in cols)
    ch = ensure_coverage(rng, ch, len(CONSENT_CHANNELS), eligible=~wd & (st != S_ANON))
    return _consent_rows(batch, rng, frame, p_, pu, wd, ch, st, dv, t)


def consent_changes(batch: Batch, rng: Rng, frame: Frame, n_changes: I64) -> tuple[Rows, TruthPart]:
    """Existing customers change their mind within the batch window."""
    person = np.repeat(np.arange(len(frame)), n_changes)
    n = len(person)
    purpose = rng.integers(0, len(SIMULATED_PURPOSES), n)
    withdraw = rng.random(n) < 0.6
    if n and not withdraw.any():
        withdraw[0] = True
    w_channel, w_stype = _withdraw_route(rng, purpose)
    g_channel = pick(rng, n, (0.6, 0.25, 0.1, 0.05))
    channel = np.where(withdraw, w_channel, g_channel)
    stype = np.where(withdraw, w_stype, np.where(g_channel == STORE, S_PHONE, S_CUSTOMER))
    at = batch.start_us + (rng.random(n) * (batch.end_us - batch.start_us - US_PER_HOUR))
    return _consent_rows(
        batch, rng, frame, person, purpose, withdraw, channel, stype,
        np.full(n, -1), at.astype(np.int64),
    )  # fmt: skip


REQUEST_TYPES: tuple[str, ...] = (
    "access",
    "rectification",
    "erasure",
    "restriction",
    "objection",
    "portability",
)
ACCESS, RECTIFICATION, ERASURE, RESTRICTION, OBJECTION, PORTABILITY = range(6)
JURISDICTIONS: tuple[str, ...] = ("RU", "EU")


def _json_text(values: Arr) -> Arr:
    return pc.replace_substring(pc.replace_substring(values, "\\", "\\\\"), '"', '\\"')


def subject_requests(
    batch: Batch, rng: Rng, frame: Frame, has_request: Bool, req_nos: I64
) -> tuple[Rows, TruthPart]:
    """Data-subject requests of every type, in both jurisdictions, some unverified."""
    pools = batch.pools
    rp = np.flatnonzero(has_request)
    n = len(rp)
    rtype = ensure_coverage(rng, pick(rng, n, (0.3, 0.12, 0.25, 0.08, 0.13, 0.12)), 6)
    juris = np.array([JURISDICTIONS.index(j) for j in JURISDICTION], dtype=np.int64)
    jur = juris[frame.locale[rp]]
    jur = np.where(rng.random(n) < 0.1, 1 - jur, jur)
    jur = ensure_coverage(rng, jur, 2)
    verified = ensure_coverage(rng, (rng.random(n) < 0.85).astype(np.int64), 2) == 1
    stype = pick(rng, n, (0.25, 0.5, 0.2, 0.05))
    dev = np.where(stype == S_ANON, frame.dev_start[rp], -1)
    stype, subject = _subject(frame, rp, stype, dev)
    lo = np.minimum(np.maximum(frame.start_us[rp], frame.signup_us[rp]), batch.end_us - US_PER_HOUR)
    received = lo + (rng.random(n) * (batch.end_us - US_PER_HOUR - lo)).astype(np.int64)

    loc = frame.locale[rp]
    fem = frame.female[rp]
    sur_idx = pools.surname_m.sample(rng, loc)
    new_last = where(
        fem, take(pools.surname_f.values, sur_idx), take(pools.surname_m.values, sur_idx)
    )
    new_first = take(pools.first.values, pools.first.sample(rng, loc * 2 + fem))
    street = take(pools.street.values, pools.street.sample(rng, loc))
    new_addr = concat(street, ", ", int_str(rng.integers(1, 150, n)))
    new_phone = concat("+7", int_str(9_000_000_000 + rng.integers(0, 999_999_999, n)))
    new_email = pc.replace_substring_regex(take(frame.email, rp), "@.*$", ".new@gmail.com")
    field = pick(rng, n, (0.3, 0.15, 0.25, 0.15, 0.15))
    field = np.where((field == 4) & ~np.asarray(new_email.is_valid(), dtype=bool), 0, field)
    field_names = strings(["last_name", "first_name", "address", "phone", "email"])
    value = choose(field, new_last, new_first, new_addr, new_phone, new_email)
    rect = concat('{"field": "', take(field_names, field), '", "value": "', _json_text(value), '"}')
    obj_purpose = take(
        strings(list(SIMULATED_PURPOSES)), pick(rng, n, (0.1, 0.2, 0.3, 0.2, 0.1, 0.1))
    )
    obj = concat('{"purpose_code": "', obj_purpose, '"}')
    empty = const("{}", n)
    details = choose(rtype, empty, rect, empty, empty, obj, empty)
    rid = concat("DSR-", padded(req_nos, 7))
    rtype_s = take(strings(list(REQUEST_TYPES)), rtype)
    jur_s = take(strings(list(JURISDICTIONS)), jur)
    stype_s = take(strings(list(SUBJECT_TYPES)), stype)
    cols = {
        "request_id": rid,
        "subject_id_type": stype_s,
        "subject_id": subject,
        "request_type": rtype_s,
        "jurisdiction": jur_s,
        "received_at": timestamps(received),
        "details": details,
        "is_verified": booleans(verified),
    }
    truth = TruthPart()
    truth.add(
        "requests",
        pa.table(
            {
                "person_id": take(frame.person_id, rp),
                "request_id": rid,
                "request_type": rtype_s,
                "jurisdiction": jur_s,
                "is_verified": booleans(verified),
                "subject_id_type": stype_s,
                "received_at": timestamps(received),
                "_batch_id": const(batch.id, n),
            }
        ),
    )
    return Rows("privacy", "subject_requests", cols, rid, rp), truth


def records(batch: Batch, schema: str, table: str, key: Arr, frame: Frame, person: I64) -> pa.Table:
    """Truth ``records`` rows: natural key -> person (null for crawler traffic)."""
    n = len(key)
    return pa.table(
        {
            "schema_name": const(schema, n),
            "table_name": const(table, n),
            "record_key": key,
            "person_id": frame.person_ids(person),
            "_batch_id": const(batch.id, n),
        }
    )
