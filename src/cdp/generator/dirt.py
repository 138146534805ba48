# ruff: noqa: RUF001, RUF002  (Russian text in literals and docstrings is intended)
"""Dirt: what real loaders deliver besides clean rows.

Every row of a table is made dirty with probability ``dirty_rate``; a dirty
row gets exactly one *kind* of dirt, drawn (by weight) from the kinds that
apply to it. Each kind that applies somewhere occurs at least once per chunk
when the rate is positive, so small data sets still show every kind. Every
dirty row is listed in the truth table ``dirt``.

A ``duplicate`` is an exact copy of the row (at-least-once delivery); the
copy is appended to the same batch. Re-deliveries into a *later* batch are
made by ``cdp.generator.increment`` (kind ``duplicate_later_batch``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cdp.generator.model import Batch, Frame, Rows
from cdp.generator.vec import (
    I64,
    US_PER_DAY,
    US_PER_HOUR,
    Arr,
    Bool,
    Rng,
    choose,
    concat,
    concat_skip_nulls,
    const,
    put,
    strings,
    take,
    timestamps,
)

JUNK_EMAILS: tuple[str, ...] = ("test@test.ru", "test@test.ru", "no@mail.ru", "1@1.ru")
JUNK_PHONES: tuple[str, ...] = ("+70000000000", "+70000000000", "+79999999999", "89000000000")
PHONE_JUNK: tuple[str, ...] = ("нет", "0", "123", "-", "не указан", "n/a", "111-11-11", "+7")

Apply = Callable[[Rows, I64, Rng, "DirtContext"], None]
Applies = Callable[[Rows], Bool]


@dataclass(frozen=True)
class DirtContext:
    batch: Batch
    frame: Frame | None


@dataclass(frozen=True)
class Kind:
    name: str
    column: str
    weight: float
    apply: Apply
    applies: Applies | None = None


def _mask(arr: Arr) -> Bool:
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=bool)


def _filled(arr: Arr) -> Arr:
    return pc.fill_null(arr, False)


def _regex(column: str, pattern: str) -> Applies:
    def applies(rows: Rows) -> Bool:
        return _mask(_filled(pc.match_substring_regex(rows.cols[column], pattern)))

    return applies


def _not_null(column: str) -> Applies:
    def applies(rows: Rows) -> Bool:
        return _mask(rows.cols[column].is_valid())

    return applies


def _equals(column: str, values: Sequence[str]) -> Applies:
    def applies(rows: Rows) -> Bool:
        return _mask(_filled(pc.is_in(rows.cols[column], value_set=strings(values))))

    return applies


def _both(a: Applies, b: Applies) -> Applies:
    def applies(rows: Rows) -> Bool:
        return a(rows) & b(rows)

    return applies


CLEAN_EMAIL = r"^[a-z0-9._+-]+@[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}$"
E164 = r"^\+[0-9]{10,14}$"
HAS_YO = "[ёЁ]"


def _set(rows: Rows, column: str, idx: I64, values: Arr) -> None:
    rows.cols[column] = put(rows.cols[column], idx, values)


def _variants(rng: Rng, n: int, *variants: Arr) -> Arr:
    return choose(rng.integers(0, len(variants), size=n), *variants)


def replace_values(column: str, values: Sequence[str | None]) -> Apply:
    """Unknown codes, junk values: pick one of ``values`` (the first one at least once)."""
    pool = pa.array(list(values), type=pa.string())

    def apply(rows: Rows, idx: I64, rng: Rng, ctx: DirtContext) -> None:
        pick_ = rng.integers(0, len(pool), size=len(idx))
        pick_[0] = 0
        _set(rows, column, idx, take(pool, pick_))

    return apply


def set_null(column: str) -> Apply:
    def apply(rows: Rows, idx: I64, rng: Rng, ctx: DirtContext) -> None:
        col = rows.cols[column]
        _set(rows, column, idx, pa.nulls(len(idx), type=col.type))

    return apply


def email_padded(column: str) -> Apply:
    def apply(rows: Rows, idx: I64, rng: Rng, ctx: DirtContext) -> None:
        v = take(rows.cols[column], idx)
        _set(rows, column, idx, _variants(rng, len(idx), concat(" ", v, " "), concat(v, "  "),
                                          concat("\t", v), concat("  ", v)))  # fmt: skip

    return apply


def email_mixed_case(column: str) -> Apply:
    def apply(rows: Rows, idx: I64, rng: Rng, ctx: DirtContext) -> None:
        v = take(rows.cols[column], idx)
        _set(rows, column, idx,
             _variants(rng, len(idx), pc.utf8_upper(v), pc.utf8_title(v), pc.utf8_capitalize(v)))  # fmt: skip

    return apply


def email_invalid(column: str) -> Apply:
    def apply(rows: Rows, idx: I64, rng: Rng, ctx: DirtContext) -> None:
        v = take(rows.cols[column], idx)
        variants = (
            pc.replace_substring(v, "@", "", max_replacements=1),  # no @
            pc.replace_substring(v, "@", "@@", max_replacements=1),
            pc.replace_substring_regex(v, r"\.([a-z]+)$", r",\1"),  # comma for dot
            pc.replace_substring_regex(v, r"\.[a-z]+$", ""),  # no top-level domain
            pc.replace_substring(v, "@", " @ ", max_replacements=1),
            pc.replace_substring_regex(v, r"^([^@]+)@", r"\1..@"),
        )
        _set(rows, column, idx, _variants(rng, len(idx), *variants))

    return apply


def _ru_formats(n: Arr) -> list[Arr]:
    a, b, c, d = (pc.utf8_slice_codeunits(n, s, e) for s, e in ((0, 3), (3, 6), (6, 8), (8, 10)))
    return [
        concat("+7 (", a, ") ", b, "-", c, "-", d),
        concat("8", n),
        concat("8-", a, "-", b, "-", c, "-", d),
        concat("8 (", a, ") ", b, "-", c, "-", d),
        concat("7", n),
        concat("+7 ", a, " ", b, " ", c, " ", d),
        concat("8 ", a, " ", b, " ", c, " ", d),
    ]


def phone_format(column: str) -> Apply:
    """A valid number written some other way than E.164."""

    def apply(rows: Rows, idx: I64, rng: Rng, ctx: DirtContext) -> None:
        v = take(rows.cols[column], idx)
        is_ru = _mask(pc.starts_with(v, "+7"))
        digits = pc.utf8_slice_codeunits(v, 1)
        ru = _ru_formats(pc.utf8_slice_codeunits(v, 2))
        other = [concat("00", digits), digits, concat("+", pc.utf8_slice_codeunits(digits, 0, 2),
                                                       " ", pc.utf8_slice_codeunits(digits, 2))]  # fmt: skip
        ru_pick = _variants(rng, len(idx), *ru)
        other_pick = _variants(rng, len(idx), *other)
        _set(rows, column, idx, pc.if_else(pa.array(is_ru), ru_pick, other_pick))

    return apply


def name_spaces(column: str) -> Apply:
    def apply(rows: Rows, idx: I64, rng: Rng, ctx: DirtContext) -> None:
        v = take(rows.cols[column], idx)
        _set(rows, column, idx,
             _variants(rng, len(idx), concat(" ", v), concat(v, "  "), concat("  ", v, " ")))  # fmt: skip

    return apply


def name_case(column: str) -> Apply:
    def apply(rows: Rows, idx: I64, rng: Rng, ctx: DirtContext) -> None:
        v = take(rows.cols[column], idx)
        _set(rows, column, idx,
             _variants(rng, len(idx), pc.utf8_upper(v), pc.utf8_lower(v), pc.utf8_swapcase(v)))  # fmt: skip

    return apply


def name_yo(column: str) -> Apply:
    """ё written as е (or Ё as Е): the same name, spelt differently."""

    def apply(rows: Rows, idx: I64, rng: Rng, ctx: DirtContext) -> None:
        v = take(rows.cols[column], idx)
        _set(rows, column, idx, pc.replace_substring(pc.replace_substring(v, "ё", "е"), "Ё", "Е"))

    return apply


def broken_json(column: str) -> Apply:
    def apply(rows: Rows, idx: I64, rng: Rng, ctx: DirtContext) -> None:
        v = take(rows.cols[column], idx)
        n = len(idx)
        variants = (
            pc.utf8_slice_codeunits(v, 0, -1),  # truncated
            pc.replace_substring(v, '"', "'"),  # single quotes
            pc.replace_substring_regex(v, r"\}$", ",}"),  # trailing comma
            const("undefined", n),
            pc.replace_substring_regex(v, r"^\{", "{{"),
            const('{"value": NaN', n),
        )
        _set(rows, column, idx, _variants(rng, n, *variants))

    return apply


def negate_decimal(column: str) -> Apply:
    def apply(rows: Rows, idx: I64, rng: Rng, ctx: DirtContext) -> None:
        v = take(rows.cols[column], idx)
        _set(rows, column, idx, pc.negate(v))

    return apply


def time_shift(column: str, low_us: int, high_us: int, *, log: bool = True) -> Apply:
    """Move a timestamp back by a (log-uniform) random amount."""

    def apply(rows: Rows, idx: I64, rng: Rng, ctx: DirtContext) -> None:
        v = take(rows.cols[column], idx).cast(pa.int64()).to_numpy()
        if log:
            shift = np.exp(rng.uniform(np.log(low_us), np.log(high_us), len(idx)))
        else:
            shift = rng.uniform(low_us, high_us, len(idx))
        _set(rows, column, idx, timestamps(v - shift.astype(np.int64)))

    return apply


def late_before_window(column: str) -> Apply:
    """Captured well before the batch window, delivered in it (out of order)."""

    def apply(rows: Rows, idx: I64, rng: Rng, ctx: DirtContext) -> None:
        back = np.exp(rng.uniform(np.log(US_PER_DAY), np.log(120 * US_PER_DAY), len(idx)))
        vals = ctx.batch.start_us - back.astype(np.int64)
        _set(rows, column, idx, timestamps(vals))

    return apply


def future_time(column: str) -> Apply:
    """A client clock far ahead: the timestamp lies after the load."""

    def apply(rows: Rows, idx: I64, rng: Rng, ctx: DirtContext) -> None:
        ahead = np.exp(rng.uniform(np.log(US_PER_HOUR), np.log(400 * US_PER_DAY), len(idx)))
        vals = ctx.batch.load_us + ahead.astype(np.int64)
        _set(rows, column, idx, timestamps(vals))

    return apply


def pii_in_url(column: str) -> Apply:
    """Identifiers in a query string (a confirmation link, a form posted with GET)."""

    def apply(rows: Rows, idx: I64, rng: Rng, ctx: DirtContext) -> None:
        assert ctx.frame is not None
        person = rows.person[idx]
        email = take(ctx.frame.email, person)
        phone = take(ctx.frame.phone, person)
        page = take(rows.cols[column], idx)
        site = pc.replace_substring_regex(page, r"^([a-z]+://[^/]+).*$", r"\1")
        n = len(idx)
        source = take(strings(["email", "sms", "newsletter"]), rng.integers(0, 3, n))
        url = concat_skip_nulls(
            site,
            "/subscribe/confirm?email=",
            email,
            "&phone=",
            pc.utf8_slice_codeunits(phone, 1),
            "&utm_source=",
            source,
            "&utm_medium=email&utm_campaign=confirm",
        )
        alt = concat_skip_nulls(site, "/account/recover?login=", pc.coalesce(email, phone),
                                "&utm_source=", source)  # fmt: skip
        _set(rows, column, idx, _variants(rng, n, url, alt))

    return apply


def pii_in_search(column: str) -> Apply:
    """Visitors type their e-mail, phone or name into the search box."""

    def apply(rows: Rows, idx: I64, rng: Rng, ctx: DirtContext) -> None:
        assert ctx.frame is not None
        person = rows.person[idx]
        f = ctx.frame
        email, phone = take(f.email, person), take(f.phone, person)
        full = concat(take(f.first_name, person), " ", take(f.last_name, person))
        variants = (
            pc.coalesce(email, full),
            pc.coalesce(phone, full),
            concat_skip_nulls("заказ ", pc.coalesce(phone, email)),
            full,
        )
        _set(rows, column, idx, _variants(rng, len(idx), *variants))

    return apply


def int_negate_or_zero(column: str) -> Apply:
    def apply(rows: Rows, idx: I64, rng: Rng, ctx: DirtContext) -> None:
        v = take(rows.cols[column], idx).to_numpy(zero_copy_only=False).astype(np.int64)
        out = np.where(rng.random(len(idx)) < 0.5, -v, 0)
        _set(rows, column, idx, pa.array(out.astype(np.int32), type=pa.int32()))

    return apply


def birth_future(column: str) -> Apply:
    def apply(rows: Rows, idx: I64, rng: Rng, ctx: DirtContext) -> None:
        day = ctx.batch.end_us // US_PER_DAY
        vals = day + rng.integers(1, 3650, len(idx))
        _set(rows, column, idx, pa.array(vals.astype(np.int32), type=pa.date32()))

    return apply


def birth_implausible(column: str) -> Apply:
    def apply(rows: Rows, idx: I64, rng: Rng, ctx: DirtContext) -> None:
        n = len(idx)
        d1800 = rng.integers(-62_000, -25_600, n)  # 1800 .. 1899
        d1900 = np.full(n, -25_567)  # 1900-01-01, the classic placeholder
        vals = np.where(rng.random(n) < 0.6, d1800, d1900)
        _set(rows, column, idx, pa.array(vals.astype(np.int32), type=pa.date32()))

    return apply


def lower(column: str) -> Apply:
    def apply(rows: Rows, idx: I64, rng: Rng, ctx: DirtContext) -> None:
        _set(rows, column, idx, pc.utf8_lower(take(rows.cols[column], idx)))

    return apply


def _noop(rows: Rows, idx: I64, rng: Rng, ctx: DirtContext) -> None:
    return None


def duplicate() -> Kind:
    return Kind("duplicate", "*", 1.0, _noop)


def email_kinds(column: str, weight: float = 1.0, junk: bool = True) -> list[Kind]:
    clean = _regex(column, CLEAN_EMAIL)
    kinds = [
        Kind("email_padded", column, weight, email_padded(column), clean),
        Kind("email_mixed_case", column, weight, email_mixed_case(column), clean),
        Kind("email_invalid", column, weight * 0.7, email_invalid(column), clean),
    ]
    if junk:
        kinds.append(Kind("junk_email", column, weight * 0.4, replace_values(column, JUNK_EMAILS)))
    return kinds


def phone_kinds(column: str, weight: float = 1.0, junk: bool = True) -> list[Kind]:
    e164 = _regex(column, E164)
    kinds = [Kind("phone_format", column, weight * 2, phone_format(column), e164)]
    if junk:
        kinds += [
            Kind("phone_junk", column, weight * 0.5, replace_values(column, PHONE_JUNK)),
            Kind("junk_phone", column, weight * 0.4, replace_values(column, JUNK_PHONES)),
        ]
    return kinds


def recipient_kinds() -> list[Kind]:
    is_email = _both(_equals("channel", ("email",)), _regex("recipient", CLEAN_EMAIL))
    is_phone = _both(_equals("channel", ("sms", "messenger")), _regex("recipient", E164))
    return [
        Kind("email_padded", "recipient", 1.0, email_padded("recipient"), is_email),
        Kind("email_mixed_case", "recipient", 1.0, email_mixed_case("recipient"), is_email),
        Kind("phone_format", "recipient", 1.0, phone_format("recipient"), is_phone),
    ]


def subject_kinds() -> list[Kind]:
    is_email = _both(_equals("subject_id_type", ("email",)), _regex("subject_id", CLEAN_EMAIL))
    is_phone = _both(_equals("subject_id_type", ("phone",)), _regex("subject_id", E164))
    return [
        Kind("email_padded", "subject_id", 1.0, email_padded("subject_id"), is_email),
        Kind("email_mixed_case", "subject_id", 1.0, email_mixed_case("subject_id"), is_email),
        Kind("phone_format", "subject_id", 1.5, phone_format("subject_id"), is_phone),
    ]


# Kinds that make a value malformed / wrong, as opposed to re-delivery or lateness.
NOT_MALFORMED: frozenset[str] = frozenset({"duplicate", "duplicate_later_batch", "late_arrival"})


def apply_dirt(
    rows: Rows, kinds: Sequence[Kind], rng: Rng, ctx: DirtContext
) -> tuple[Rows, Rows | None, pa.Table]:
    """Make about ``dirty_rate`` of the rows dirty.

    Returns the rows (changed in place), the duplicate copies to deliver as
    well (or None) and the ``dirt`` truth entries.
    """
    n = len(rows)
    rate = ctx.batch.dirty_rate
    if n == 0 or rate <= 0 or not kinds:
        return rows, None, empty_dirt()
    weights = np.array([k.weight for k in kinds], dtype=np.float64)
    applicable = np.ones((n, len(kinds)), dtype=bool)
    for j, k in enumerate(kinds):
        if k.applies is not None:
            applicable[:, j] = k.applies(rows)
    assigned = np.full(n, -1, dtype=np.int64)
    dirty = np.flatnonzero(rng.random(n) < rate)
    w = applicable[dirty] * weights
    total = w.sum(axis=1)
    ok = total > 0
    dirty, w, total = dirty[ok], w[ok], total[ok]
    if len(dirty):
        cum = np.cumsum(w, axis=1) / total[:, None]
        u = rng.random(len(dirty))[:, None]
        assigned[dirty] = np.minimum((u >= cum).sum(axis=1), len(kinds) - 1)
    # every applicable kind at least once (if there is a clean row to spare)
    for j in range(len(kinds)):
        if (assigned == j).any():
            continue
        spare = np.flatnonzero((assigned < 0) & applicable[:, j])
        if len(spare):
            assigned[spare[int(rng.integers(0, len(spare)))]] = j

    dirt_parts: list[pa.Table] = []
    copies: Rows | None = None
    for j, k in enumerate(kinds):
        idx = np.flatnonzero(assigned == j)
        if len(idx) == 0:
            continue
        if k.name == "duplicate":
            copy = idx[rng.permutation(len(idx))]
            copies = Rows(
                rows.schema,
                rows.table,
                {c: take(a, copy) for c, a in rows.cols.items()},
                take(rows.key, copy),
                rows.person[copy],
            )
        else:
            k.apply(rows, idx, rng, ctx)
        dirt_parts.append(dirt_table(rows, idx, k.column, k.name, ctx.batch.id))
    return rows, copies, pa.concat_tables(dirt_parts) if dirt_parts else empty_dirt()


DIRT_SCHEMA = pa.schema(
    [
        ("schema_name", pa.string()),
        ("table_name", pa.string()),
        ("record_key", pa.string()),
        ("column_name", pa.string()),
        ("kind", pa.string()),
        ("_batch_id", pa.string()),
    ]
)


def empty_dirt() -> pa.Table:
    return DIRT_SCHEMA.empty_table()


def dirt_table(rows: Rows, idx: I64, column: str, kind: str, batch: str) -> pa.Table:
    n = len(idx)
    return pa.table(
        [
            const(rows.schema, n),
            const(rows.table, n),
            take(rows.key, idx),
            const(column, n),
            const(kind, n),
            const(batch, n),
        ],
        schema=DIRT_SCHEMA,
    )


def _crm_kinds() -> list[Kind]:
    names = ("first_name", "last_name")
    kinds = [duplicate()]
    kinds += email_kinds("email")
    kinds += phone_kinds("phone")
    for col in names:
        nn = _not_null(col)
        kinds += [
            Kind("name_extra_spaces", col, 0.5, name_spaces(col), nn),
            Kind("name_mixed_case", col, 0.5, name_case(col), nn),
            Kind("name_yo_spelling", col, 2.0, name_yo(col), _regex(col, HAS_YO)),
        ]
    kinds += [
        Kind("name_extra_spaces", "middle_name", 0.2, name_spaces("middle_name"),
             _not_null("middle_name")),
        Kind("birth_date_future", "birth_date", 0.4, birth_future("birth_date")),
        Kind("birth_date_implausible", "birth_date", 0.4, birth_implausible("birth_date")),
        Kind("unknown_gender", "gender", 0.6, replace_values(
            "gender", ("male", "female", "M", "F", "Ж", "М", "муж", "жен", "unknown", "0", "x"))),
        Kind("country_lower_case", "country_code", 0.6, lower("country_code"),
             _not_null("country_code")),
        Kind("country_null", "country_code", 0.3, set_null("country_code")),
    ]  # fmt: skip
    return kinds


def _web_kinds(batch_no: int) -> list[Kind]:
    kinds = [
        duplicate(),
        Kind("late_arrival", "event_at", 1.0, time_shift("event_at", US_PER_HOUR, 30 * US_PER_DAY)),
        Kind("future_event_at", "event_at", 0.6, future_time("event_at")),
        Kind("unknown_event_type", "event_type", 0.8, replace_values(
            "event_type", ("pageview", "PAGE_VIEW", "click", "scroll", "video_play", "",
                           "test_event", "purchase", "Search"))),
        Kind("broken_json", "properties", 1.0, broken_json("properties")),
        Kind("pii_in_url", "page_url", 0.8, pii_in_url("page_url"),
             _not_null("customer_id")),
        Kind("pii_in_search", "search_query", 3.0, pii_in_search("search_query"),
             _both(_equals("event_type", ("search",)), _not_null("customer_id"))),
    ]  # fmt: skip
    if batch_no > 1:
        kinds.append(Kind("late_arrival", "event_at", 0.5, late_before_window("event_at")))
    return kinds


def _order_kinds() -> list[Kind]:
    kinds = [
        duplicate(),
        Kind("negative_amount", "total_amount", 0.6, negate_decimal("total_amount"),
             _not_null("total_amount")),
        Kind("null_amount", "total_amount", 0.5, set_null("total_amount")),
        Kind("unknown_status", "status", 0.7, replace_values(
            "status", ("PAID", "in_transit", "unknown", "оплачен", "1", "Delivered"))),
        Kind("unknown_currency", "currency", 0.6, replace_values(
            "currency", ("rub", "RUR", "₽", "руб.", "XXX", ""))),
        Kind("unknown_channel", "channel", 0.5, replace_values(
            "channel", ("mobile", "WEB", "marketplace", "telegram_bot"))),
    ]  # fmt: skip
    kinds += email_kinds("email", 0.6)
    kinds += phone_kinds("phone", 0.6)
    return kinds


def _item_kinds() -> list[Kind]:
    return [
        duplicate(),
        Kind("bad_quantity", "quantity", 1.0, int_negate_or_zero("quantity")),
        Kind("null_amount", "unit_price", 1.0, set_null("unit_price")),
    ]


def _message_kinds() -> list[Kind]:
    return [
        duplicate(),
        Kind("unknown_event_type", "event_type", 1.0, replace_values(
            "event_type", ("open", "CLICK", "read", "dropped", "deferred"))),
        Kind("unknown_channel", "channel", 0.7, replace_values(
            "channel", ("viber", "telegram", "EMAIL", "whatsapp"))),
        *recipient_kinds(),
    ]  # fmt: skip


def _consent_kinds(batch_no: int) -> list[Kind]:
    kinds = [
        duplicate(),
        Kind("unknown_purpose", "purpose_code", 1.0, replace_values(
            "purpose_code", ("marketing", "EMAIL_MARKETING", "newsletter", "all", "3rd_party",
                             " analytics", "email-marketing"))),
        Kind("unknown_channel", "channel", 0.6, replace_values(
            "channel", ("ivr", "web", "app", "кол-центр", "EMAIL_LINK"))),
        Kind("missing_evidence", "evidence_ref", 0.5, set_null("evidence_ref")),
        *subject_kinds(),
    ]  # fmt: skip
    if batch_no > 1:
        kinds.append(Kind("late_arrival", "captured_at", 1.5, late_before_window("captured_at")))
    return kinds


def _request_kinds() -> list[Kind]:
    return [
        duplicate(),
        Kind("broken_json", "details", 1.5, broken_json("details")),
        *subject_kinds(),
    ]


def kinds_for(schema: str, table: str, batch_no: int) -> list[Kind]:
    """The dirt kinds of one raw table."""
    match (schema, table):
        case ("crm", "customers"):
            return _crm_kinds()
        case ("web", "events"):
            return _web_kinds(batch_no)
        case ("shop", "orders"):
            return _order_kinds()
        case ("shop", "order_items"):
            return _item_kinds()
        case ("messaging", "message_events"):
            return _message_kinds()
        case ("privacy", "consent_events"):
            return _consent_kinds(batch_no)
        case ("privacy", "subject_requests"):
            return _request_kinds()
    raise KeyError(f"{schema}.{table}")
