"""Synthetic persons and their CRM records.

A *person* is the ground truth; the CRM knows records. Every person has one
primary CRM record, some have duplicates (a store sign-up with the same
phone, a second web account with the same e-mail, a Latin spelling of the
name). Some persons live in a household whose members share a family
mailbox and an address. Each person browses from one or more devices
(cookies / app installs), each with its own anonymous id.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cdp.generator.model import Batch, Frame, Registry, Rows, TruthPart
from cdp.generator.pools import (
    COUNTRY,
    LOCALE_WEIGHTS,
    LOCALES,
    RU,
    US,
    Pools,
)
from cdp.generator.vec import (
    I64,
    US_PER_DAY,
    US_PER_HOUR,
    Arr,
    Bool,
    Rng,
    booleans,
    choose,
    concat,
    concat_skip_nulls,
    const,
    dates,
    hex_strings,
    int_str,
    nulls,
    padded,
    pick,
    put,
    strings,
    take,
    timestamps,
    uuid4_strings,
    where,
)


@dataclass
class Counters:
    """Next free sequence numbers (persisted in the truth ``batches`` table)."""

    person: int = 1
    customer: int = 1
    order: int = 1
    message: int = 1
    request: int = 1

    def take(self, name: str, n: int) -> I64:
        start = int(getattr(self, name))
        setattr(self, name, start + n)
        return np.arange(start, start + n, dtype=np.int64)


def person_ids(nos: I64) -> Arr:
    return concat("P", padded(nos, 9))


def customer_ids(nos: I64) -> Arr:
    return concat("CRM-", padded(nos, 8))


def loyalty_numbers(person_nos: I64) -> Arr:
    """16-digit card numbers, unique: an affine permutation of the person number."""
    scrambled = (person_nos * 982_451_653 + 7_777_777) % 10**15
    return concat("2", padded(scrambled, 15))


def _has_valid(arr: Arr) -> Bool:
    return np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool)


def _first_dup(keys: I64) -> Bool:
    """True for every occurrence of a key after its first one."""
    _, first = np.unique(keys, return_index=True)
    out = np.ones(len(keys), dtype=bool)
    out[first] = False
    return out


def new_phones(rng: Rng, locale: I64, registry: Registry) -> Arr:
    """Clean, unique mobile numbers in E.164 for each row's locale."""
    n = len(locale)
    nat = np.zeros(n, dtype=np.int64)
    key = np.zeros(n, dtype=np.int64)
    todo = np.arange(n)
    for _ in range(20):
        if len(todo) == 0:
            break
        loc = locale[todo]
        ru_n = 9_000_000_000 + rng.integers(0, 1_000_000_000, len(todo))
        gb_n = 7_000_000_000 + rng.integers(0, 1_000_000_000, len(todo))
        us_n = rng.integers(201, 990, len(todo)) * 10_000_000 + rng.integers(
            2_000_000, 10_000_000, len(todo)
        )
        nat[todo] = np.select([loc == RU, loc == US], [ru_n, us_n], gb_n)
        cc = np.select([loc == RU, loc == US], [7, 1], 44)
        key[todo] = cc * 10**10 + nat[todo]
        clash = registry.has_phones(key) | _first_dup(key)
        todo = np.flatnonzero(clash)
    if len(todo):
        raise RuntimeError("could not draw unique phone numbers")
    registry.add_phones(key)
    cc_str = take(strings(["+7", "+44", "+1"]), locale)
    return concat(cc_str, int_str(nat))


def new_emails(
    rng: Rng,
    first_lat: Arr,
    surname_lat: Arr,
    birth_year: I64,
    domain: Arr,
    salt: I64,
    registry: Registry,
) -> Arr:
    """Clean, unique e-mail addresses built from Latin names (all rows valid)."""
    n = len(birth_year)
    yy = padded(birth_year % 100, 2)
    nn = int_str(rng.integers(1, 999, n))
    initial = pc.utf8_slice_codeunits(first_lat, 0, 1)
    local = choose(
        pick(rng, n, (22, 14, 10, 16, 12, 8, 10, 8)),
        concat(first_lat, ".", surname_lat),
        concat(initial, ".", surname_lat),
        concat(surname_lat, ".", first_lat),
        concat(first_lat, surname_lat, yy),
        concat(first_lat, "_", surname_lat, nn),
        concat(surname_lat, int_str(birth_year)),
        concat(first_lat, ".", surname_lat, ".", nn),
        concat(initial, surname_lat, nn),
    )
    local = pc.replace_substring_regex(local, r"[^a-z0-9._-]", "")
    return unique_emails(concat(local, "@", domain), local, domain, salt, registry)


def unique_emails(email: Arr, local: Arr, domain: Arr, salt: I64, registry: Registry) -> Arr:
    """Keep addresses unique across everything handed out: a clash gets a numeric suffix."""
    hashes = registry.hash(email)
    for round_no in range(6):
        clash = registry.has_emails(hashes) | _first_dup(hashes.astype(np.int64))
        idx = np.flatnonzero(clash)
        if len(idx) == 0:
            break
        suffix = int_str(salt[idx] * 7 + round_no)
        fixed = concat(take(local, idx), "_", suffix, "@", take(domain, idx))
        email = put(email, idx, fixed)
        hashes[idx] = registry.hash(fixed)
    else:
        raise RuntimeError("could not draw unique e-mail addresses")
    registry.add_emails(hashes)
    return email


def addresses(rng: Rng, pools: Pools, locale: I64) -> tuple[Arr, Arr, Arr]:
    """(city, postal_code, street address) for each row's locale."""
    n = len(locale)
    city = take(pools.city.values, pools.city.sample(rng, locale))
    street = take(pools.street.values, pools.street.sample(rng, locale))
    house = int_str(rng.integers(1, 180, n))
    apt = int_str(rng.integers(1, 400, n))
    is_ru = locale == RU
    has_apt = rng.random(n) < np.where(is_ru, 0.75, 0.2)
    ru = concat_skip_nulls(street, ", д. ", house, where(has_apt, concat(", кв. ", apt), None))
    en = concat_skip_nulls(where(has_apt, concat("Flat ", apt, ", "), None), house, " ", street)
    address = where(is_ru, ru, en)
    postal = choose(
        locale,
        padded(rng.integers(101_000, 692_999, n), 6),
        take(pools.gb_postcode, rng.integers(0, len(pools.gb_postcode), n)),
        padded(rng.integers(10_001, 99_950, n), 5),
    )
    return city, postal, address


def push_tokens(rng: Rng, n: int) -> Arr:
    fcm = concat("fcm:", hex_strings(rng, n, 40))
    apns = concat("apns:", hex_strings(rng, n, 64))
    return where(rng.random(n) < 0.55, fcm, apns)


@dataclass
class NewPeople:
    frame: Frame
    crm: Rows
    truth: TruthPart


def identifiers(person: Arr, id_type: str, value: Arr, batch: str) -> pa.Table:
    """Truth ``identifiers`` rows for the non-null values."""
    t = pa.table(
        {
            "person_id": person,
            "id_type": const(id_type, len(value)),
            "value": value,
            "_batch_id": const(batch, len(value)),
        }
    )
    return t.filter(value.is_valid())


def generate_people(
    batch: Batch, rng: Rng, n: int, counters: Counters, registry: Registry
) -> NewPeople:
    """``n`` new persons with their CRM records, devices and truth rows."""
    pools = batch.pools
    start, end = batch.start_us, batch.end_us
    span = end - start
    bid = batch.id
    nos = counters.take("person", n)
    pid = person_ids(nos)
    arange = np.arange(n)

    # households: every 4th position may start one of 2-3 consecutive persons
    heads = np.arange(0, max(n - 1, 0), 4)
    heads = heads[rng.random(len(heads)) < 0.06]
    if len(heads) == 0 and n >= 8:
        heads = np.array([0])
    size = np.minimum(np.where(rng.random(len(heads)) < 0.35, 3, 2), n - heads)
    hh_head = arange.copy()
    in_hh = np.zeros(n, dtype=bool)
    for offset in range(3):
        m = offset < size
        hh_head[heads[m] + offset] = heads[m]
        in_hh[heads[m] + offset] = True

    locale = pick(rng, n, LOCALE_WEIGHTS)[hh_head]
    female = rng.random(n) < 0.53
    fi = pools.first.sample(rng, locale * 2 + female)
    si = pools.surname_m.sample(rng, locale)[hh_head]
    first = take(pools.first.values, fi)
    last = where(female, take(pools.surname_f.values, si), take(pools.surname_m.values, si))
    pat = take(pools.patronymic.values, pools.patronymic.sample(rng, female.astype(np.int64)))
    middle = where(locale == RU, pat, None)
    age_days = (18 + rng.beta(2.0, 3.2, n) * 67) * 365.25
    birth_day = (end // US_PER_DAY - age_days).astype(np.int64)
    birth_year = (1970 + birth_day / 365.2425).astype(np.int64)
    city, postal, address = addresses(rng, pools, locale)
    city, postal, address = take(city, hh_head), take(postal, hh_head), take(address, hh_head)
    country = take(strings(list(COUNTRY)), locale)

    # contacts
    has_email = rng.random(n) < 0.93
    has_phone = rng.random(n) < 0.88
    has_phone |= ~has_email & ~in_hh
    first_lat = take(pools.first_lat.values, fi)
    sur_lat = where(
        female, take(pools.surname_lat_f.values, si), take(pools.surname_lat_m.values, si)
    )
    domain = take(pools.domain.values, pools.domain.sample(rng, locale))
    pe_idx = np.flatnonzero(has_email & ~in_hh)
    personal = new_emails(
        rng,
        take(first_lat, pe_idx),
        take(sur_lat, pe_idx),
        birth_year[pe_idx],
        take(domain, pe_idx),
        nos[pe_idx],
        registry,
    )
    email = put(nulls(n), pe_idx, personal)
    # a family mailbox per household, used by every member's CRM record
    shared = TruthPart()
    if len(heads):
        h_sur = take(pools.surname_lat_m.values, si[heads])
        h_loc = locale[heads]
        fam_ru = choose(
            rng.integers(0, 3, len(heads)),
            concat("semya.", h_sur),
            concat(h_sur, ".family"),
            concat("dom.", h_sur),
        )
        fam_en = choose(
            rng.integers(0, 2, len(heads)), concat("the", h_sur, "s"), concat(h_sur, ".family")
        )
        fam_local = where(h_loc == RU, fam_ru, fam_en)
        fam_local = pc.replace_substring_regex(fam_local, r"[^a-z0-9._-]", "")
        fam_domain = take(domain, heads)
        fam = unique_emails(
            concat(fam_local, "@", fam_domain), fam_local, fam_domain, nos[heads], registry
        )
        member_head = np.flatnonzero(in_hh)
        head_pos = np.searchsorted(heads, hh_head[member_head])
        email = put(email, member_head, take(fam, head_pos))
        shared.add(
            "shared_identifiers",
            pa.table(
                {
                    "id_type": const("email", len(heads)),
                    "value": fam,
                    "reason": const("family_mailbox", len(heads)),
                    "_batch_id": const(bid, len(heads)),
                }
            ),
        )
    phone = put(nulls(n), np.flatnonzero(has_phone), new_phones(rng, locale[has_phone], registry))
    has_loyalty = rng.random(n) < 0.55
    loyalty = where(has_loyalty, loyalty_numbers(nos), None)

    # time line: sign-up (CRM created_at) and first visit
    if batch.no == 1:
        signup = start + (span * rng.random(n) ** 0.75).astype(np.int64)
        lead = rng.exponential(20 * US_PER_DAY, n)
    else:
        signup = start + (span * rng.random(n)).astype(np.int64)
        lead = rng.exponential(2 * US_PER_HOUR, n)
    signup = np.minimum(signup, end - US_PER_HOUR)
    first_seen = np.maximum(start, signup - lead.astype(np.int64))

    # devices
    n_dev = 1 + pick(rng, n, (0.55, 0.30, 0.12, 0.03))
    dev_person = np.repeat(arange, n_dev)
    dev_type = pick(rng, len(dev_person), (0.35, 0.40, 0.08, 0.17))
    dev_ua = take(pools.user_agent.values, pools.user_agent.sample(rng, dev_type))
    dev_anon = uuid4_strings(rng, len(dev_person))
    dev_first = first_seen[dev_person].copy()
    later = np.r_[False, dev_person[1:] == dev_person[:-1]]
    dev_first[later] += (rng.random(later.sum()) * (end - dev_first[later]) * 0.6).astype(np.int64)
    has_app = np.zeros(n, dtype=bool)
    has_app[dev_person[dev_type == 3]] = True
    push = where(has_app, push_tokens(rng, n), None)

    # CRM records: the primary one, plus duplicates for some persons
    n_dup = (rng.random(n) < 0.06).astype(np.int64) + (rng.random(n) < 0.012)
    dup_person = np.repeat(arange, n_dup)
    prim_no = counters.take("customer", n)
    dup_no = counters.take("customer", len(dup_person))
    prim_cid = customer_ids(prim_no)
    dup_cid = customer_ids(dup_no)
    alt_pos = np.full(n, -1)
    alt_pos[dup_person[::-1]] = np.arange(len(dup_person))[::-1]
    alt_cid = take(dup_cid, np.maximum(alt_pos, 0)) if len(dup_person) else nulls(n)
    alt_cid = where(alt_pos >= 0, alt_cid, None)

    rec_person = np.concatenate([arange, dup_person])
    is_dup = np.r_[np.zeros(n, dtype=bool), np.ones(len(dup_person), dtype=bool)]
    nr = len(rec_person)
    cid = pa.concat_arrays([prim_cid, dup_cid])
    p_email = _has_valid(email)
    variant = rng.integers(0, 3, nr)  # 0: same e-mail, 1: same phone, 2: both
    variant = np.where(~p_email[rec_person], 1, variant)
    variant = np.where(~has_phone[rec_person] & p_email[rec_person], 0, variant)
    second_email_rows = np.flatnonzero(is_dup & (variant == 1) & (rng.random(nr) < 0.5))
    sp = rec_person[second_email_rows]
    other = new_emails(
        rng,
        take(first_lat, sp),
        take(sur_lat, sp),
        birth_year[sp],
        take(pools.domain.values, pools.domain.sample(rng, locale[sp])),
        nos[sp] + 10**9,
        registry,
    )
    rec_email = take(email, rec_person)
    rec_email = where(is_dup & (variant == 1), None, rec_email)
    rec_email = put(rec_email, second_email_rows, other)
    rec_phone = take(phone, rec_person)
    rec_phone = where(is_dup & (variant == 0), None, rec_phone)
    loc_r = locale[rec_person]
    fem_r = female[rec_person]
    latin = is_dup & (loc_r == RU) & (rng.random(nr) < 0.25)
    lat_last = where(
        fem_r,
        take(pools.surname_cap_lat_f.values, si[rec_person]),
        take(pools.surname_cap_lat_m.values, si[rec_person]),
    )
    rec_first = where(
        latin, take(pools.first_lat_cap.values, fi[rec_person]), take(first, rec_person)
    )
    rec_last = where(latin, lat_last, take(last, rec_person))
    rec_middle = where(~is_dup & (rng.random(nr) < 0.6), take(middle, rec_person), None)
    keep_birth = rng.random(nr) < np.where(is_dup, 0.4, 0.85)
    rec_birth = dates(birth_day[rec_person], null=~keep_birth)
    gender_known = rng.random(nr) < np.where(is_dup, 0.5, 0.92)
    rec_gender = where(gender_known, where(fem_r, "f", "m"), None)
    keep_addr = ~is_dup | (rng.random(nr) < 0.5)
    rec_city = where(keep_addr, take(city, rec_person), None)
    rec_postal = where(keep_addr, take(postal, rec_person), None)
    rec_address = where(keep_addr, take(address, rec_person), None)
    rec_country = take(country, rec_person)
    ru_pass = concat(
        padded(rng.integers(1000, 9999, nr), 4), " ", padded(rng.integers(0, 999_999, nr), 6)
    )
    en_pass = concat(
        take(strings(list("ABCDEFGHJKLMNPRSTUVWXYZ")), rng.integers(0, 23, nr)),
        padded(rng.integers(0, 99_999_999, nr), 8),
    )
    has_pass = ~is_dup & (rng.random(nr) < np.where(loc_r == RU, 0.6, 0.1))
    rec_passport = where(has_pass, where(loc_r == RU, ru_pass, en_pass), None)
    rec_loyalty = where(~is_dup | (rng.random(nr) < 0.2), take(loyalty, rec_person), None)
    dup_created = start + (rng.random(len(dup_person)) * (end - US_PER_HOUR - start)).astype(
        np.int64
    )
    created = np.concatenate([signup, dup_created])
    edited = rng.random(nr) < 0.4
    updated = created + np.where(
        edited, (rng.random(nr) * (end - created) * 0.5).astype(np.int64), 0
    )
    deleted = is_dup & (rng.random(nr) < 0.05)

    cols: dict[str, Arr] = {
        "customer_id": cid,
        "email": rec_email,
        "phone": rec_phone,
        "first_name": rec_first,
        "last_name": rec_last,
        "middle_name": rec_middle,
        "birth_date": rec_birth,
        "gender": rec_gender,
        "city": rec_city,
        "postal_code": rec_postal,
        "address": rec_address,
        "country_code": rec_country,
        "passport_number": rec_passport,
        "loyalty_card_number": rec_loyalty,
        "created_at": timestamps(created),
        "updated_at": timestamps(updated),
        "is_deleted": booleans(deleted),
    }
    truth = shared
    old_phones = nulls(0)
    old_phone_person = np.empty(0, dtype=np.int64)
    if batch.no == 1:
        # earlier versions of some primary records still sit in the CRM export
        hist = np.flatnonzero(~is_dup & (rng.random(nr) < 0.12) & (end - created > 2 * US_PER_DAY))
        kind = pick(rng, len(hist), (0.4, 0.3, 0.15, 0.15))
        kind = np.where((kind == 1) & ~_has_valid(take(rec_phone, hist)), 0, kind)
        kind = np.where((kind == 2) & ~fem_r[hist], 0, kind)
        old = {c: take(a, hist) for c, a in cols.items()}
        hp = rec_person[hist]
        o_city, o_postal, o_addr = addresses(rng, pools, locale[hp])
        moved = kind == 0
        old["city"] = where(moved, o_city, old["city"])
        old["postal_code"] = where(moved, o_postal, old["postal_code"])
        old["address"] = where(moved, o_addr, old["address"])
        ph = np.flatnonzero(kind == 1)
        old_phones = new_phones(rng, locale[hp[ph]], registry)
        old_phone_person = hp[ph]
        old["phone"] = put(old["phone"], ph, old_phones)
        maiden = take(pools.new_surname.values, si[hp])
        old["last_name"] = where(kind == 2, maiden, old["last_name"])
        old["loyalty_card_number"] = where(kind == 3, None, old["loyalty_card_number"])
        old_created = created[hist]
        old["updated_at"] = timestamps(old_created)
        new_updated = (
            old_created
            + US_PER_DAY
            + (rng.random(len(hist)) * (end - old_created - 2 * US_PER_DAY)).astype(np.int64)
        )
        cur_updated = np.array(cols["updated_at"].cast(pa.int64()).to_numpy(), dtype=np.int64)
        cur_updated[hist] = np.maximum(cur_updated[hist], new_updated)
        cols["updated_at"] = timestamps(cur_updated)
        cols = {c: pa.concat_arrays([cols[c], old[c]]) for c in cols}
        rec_rows_person = np.concatenate([rec_person, hp])
    else:
        rec_rows_person = rec_person

    crm = Rows("crm", "customers", cols, cols["customer_id"], rec_rows_person)

    # truth
    truth.add(
        "persons",
        pa.table(
            {
                "person_id": pid,
                "household_id": where(in_hh, concat("H", padded(nos[hh_head], 9)), None),
                "locale": take(strings(list(LOCALES)), locale),
                "gender": where(female, "f", "m"),
                "first_name": first,
                "last_name": last,
                "middle_name": middle,
                "birth_date": dates(birth_day),
                "created_at": timestamps(signup),
                "_batch_id": const(bid, n),
            }
        ),
    )
    truth.add(
        "profiles",
        pa.table(
            {
                "person_id": pid,
                "customer_id": prim_cid,
                "alt_customer_id": alt_cid,
                "email": email,
                "phone": phone,
                "push_token": push,
                "loyalty_card_number": loyalty,
                "city": city,
                "postal_code": postal,
                "address": address,
                "country_code": country,
                "_batch_id": const(bid, n),
            }
        ),
    )
    rec_pid = take(pid, rec_person)
    truth.add(
        "records",
        pa.table(
            {
                "schema_name": const("crm", nr),
                "table_name": const("customers", nr),
                "record_key": cid,
                "person_id": rec_pid,
                "_batch_id": const(bid, nr),
            }
        ),
    )
    dev_pid = take(pid, dev_person)
    for table in (
        identifiers(rec_pid, "customer_id", cid, bid),
        identifiers(pid, "email", email, bid),
        identifiers(take(pid, sp), "email", other, bid),
        identifiers(pid, "phone", phone, bid),
        identifiers(take(pid, old_phone_person), "phone", old_phones, bid),
        identifiers(dev_pid, "anonymous_id", dev_anon, bid),
        identifiers(pid, "loyalty_card", loyalty, bid),
        identifiers(pid, "push_token", push, bid),
    ):
        truth.add("identifiers", table)
    device_names = strings(["desktop", "mobile", "tablet", "app", "bot"])
    truth.add(
        "devices",
        pa.table(
            {
                "person_id": dev_pid,
                "anonymous_id": dev_anon,
                "device_type": take(device_names, dev_type),
                "user_agent": dev_ua,
                "first_seen_at": timestamps(dev_first),
                "_batch_id": const(bid, len(dev_person)),
            }
        ),
    )

    frame = Frame(
        person_id=pid,
        locale=locale,
        female=female,
        first_name=first,
        last_name=last,
        customer_id=prim_cid,
        alt_customer_id=alt_cid,
        email=email,
        phone=phone,
        push_token=push,
        city=city,
        address=address,
        signup_us=signup,
        start_us=first_seen,
        dev_person=dev_person,
        dev_anon=dev_anon,
        dev_type=dev_type,
        dev_ua=dev_ua,
        dev_first_us=dev_first,
    )
    return NewPeople(frame=frame, crm=crm, truth=truth)
