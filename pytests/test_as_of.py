"""One as_of parser (cdp.as_of): ISO moments in ASCII digits, the dbt macro's rules, every caller.

Hostile input via hypothesis: whatever the parser accepts is an ISO 8601
moment that Python's own ``datetime.fromisoformat`` reads to the same UTC
time, and that the dbt macro (``macros/consent/as_of.sql``, rendered with
Jinja here) reads to the same value; everything else is one ``AsOfError``
naming the rule. A date typed with other digits (Arabic-Indic, full-width)
is refused, naming the digits.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import secrets
import types
from pathlib import Path
from typing import Any

import jinja2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdp import erase, purge
from cdp.as_of import HINT, AsOfError, parse_as_of
from cdp.preflight import ConfigurationError, check_vars
from conftest import ROOT

FAST = settings(
    max_examples=int(os.environ.get("CDP_HYP_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
ISO = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}([.][0-9]{1,6})?)?(Z|[+-][0-9]{2}:?[0-9]{2})?)?"
)
ARABIC_INDIC = str.maketrans("0123456789", "".join(map(chr, range(0x0660, 0x066A))))
PERSIAN = str.maketrans("0123456789", "".join(map(chr, range(0x06F0, 0x06FA))))
FULL_WIDTH = str.maketrans("0123456789", "".join(map(chr, range(0xFF10, 0xFF1A))))
ASCII_SPACE = " \t\n\r\f\v"


def _oracle(text: str) -> dt.datetime:
    """Python's own reading of an ISO text, as a naive UTC datetime."""
    moment = dt.datetime.fromisoformat(text.strip())
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    return moment


# --------------------------------------------------------------------------- the dbt macro


class _Returned(Exception):
    def __init__(self, value: object) -> None:
        super().__init__("returned")
        self.value = value


class _CompilerError(Exception):
    pass


def _macro_parser() -> Any:
    """``default__parse_as_of`` of the project's macro file, with dbt's context stubbed."""

    def returned(value: object) -> None:
        raise _Returned(value)

    def compiler_error(message: str) -> None:
        raise _CompilerError(message)

    source = (ROOT / "macros" / "consent" / "as_of.sql").read_text(encoding="utf-8")
    module = (
        jinja2.Environment(extensions=["jinja2.ext.do"], autoescape=False)  # noqa: S701 (SQL)
        .from_string(source)
        .make_module(
            {
                "return": returned,
                "modules": types.SimpleNamespace(re=re, datetime=dt),
                "exceptions": types.SimpleNamespace(raise_compiler_error=compiler_error),
            }
        )
    )
    return getattr(module, "default__parse_as_of")  # noqa: B009 (a Jinja macro)


MACRO = _macro_parser()


def macro_as_of(value: object) -> dt.datetime | None:
    """The macro's moment for ``value``, or None where it stops the run."""
    try:
        MACRO(value)
    except _Returned as done:
        assert isinstance(done.value, dt.datetime)
        return done.value
    except _CompilerError:
        return None
    raise AssertionError("the macro neither returned nor raised")


# --------------------------------------------------------------------------- examples


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-01", dt.datetime(2026, 11, 1)),
        ("  2026-11-01\n", dt.datetime(2026, 11, 1)),
        ("2026-11-01T09:30", dt.datetime(2026, 11, 1, 9, 30)),
        ("2026-11-01T09:30:00Z", dt.datetime(2026, 11, 1, 9, 30)),
        ("2026-11-01 12:30:00.5+03:00", dt.datetime(2026, 11, 1, 9, 30, 0, 500000)),
        ("2026-11-01T09:30:00+03:00", dt.datetime(2026, 11, 1, 6, 30)),
        ("2026-11-01T23:30-0130", dt.datetime(2026, 11, 2, 1, 0)),
        ("2999-12-31T23:59:59.999999", dt.datetime(2999, 12, 31, 23, 59, 59, 999999)),
        (dt.date(2026, 11, 1), dt.datetime(2026, 11, 1)),
        (dt.datetime(2026, 11, 1, 9, 30), dt.datetime(2026, 11, 1, 9, 30)),
        (
            dt.datetime(2026, 11, 1, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=3))),
            dt.datetime(2026, 11, 1, 6, 30),
        ),
    ],
)
def test_iso_moments_are_read_as_utc(value: object, expected: dt.datetime) -> None:
    assert parse_as_of(value) == expected
    assert macro_as_of(value) == expected


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("2026-11-01".translate(ARABIC_INDIC), "digits other than ASCII 0-9"),
        ("2026-11-01".translate(PERSIAN), "digits other than ASCII 0-9"),
        ("2026-11-01".translate(FULL_WIDTH), "digits other than ASCII 0-9"),
        ("2026-11-0\u0661", "digits other than ASCII 0-9"),  # one digit is enough
        ("2026-11-01T" + "09".translate(ARABIC_INDIC) + ":30", "digits other than ASCII 0-9"),
        ("\u00a02026-11-01", "not ASCII"),  # a no-break space is not white space here
        ("2026-11-01\u200b", "not ASCII"),
        ("2026\u201011\u201001", "not ASCII"),  # Unicode hyphens
        ("2026-02-30", "no such day in that month"),
        ("2026-04-31", "no such day in that month"),
        ("2026-02-29", "no such day in that month"),  # 2028-02-29 is a day
        ("2026-13-01", "a field is out of range"),
        ("2026-01-32", "a field is out of range"),
        ("2026-11-01T24:00", "a field is out of range"),
        ("1899-12-31", "the year is out of range"),
        ("3000-01-01", "the year is out of range"),
        ("2026-11-01T09:30+15:00", "the UTC offset is out of range"),
        ("2026-11-01T09:30+03:60", "the UTC offset is out of range"),
        ("yesterday", ""),
        ("", ""),
        ("20261101", ""),
        ("2026-11-01; drop table x", ""),
        ("2026-11-01T09", ""),
        ("2026-11-01T09:30:00.1234567", ""),
        (20261101, ""),
        (True, ""),
        (dt.date(1899, 12, 31), "the year is out of range"),
    ],
)
def test_anything_else_is_refused_naming_the_problem(value: object, problem: str) -> None:
    with pytest.raises(AsOfError) as refused:
        parse_as_of(value)
    message = str(refused.value)
    assert message.startswith(HINT)
    assert "as_of must be an ISO 8601 date" in message
    assert problem in message
    assert "got '" in message


def test_none_is_now_in_utc() -> None:
    before = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    moment = parse_as_of(None)
    assert moment.tzinfo is None
    assert before <= moment <= dt.datetime.now(dt.UTC).replace(tzinfo=None)
    fixed = dt.datetime(2026, 11, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=3)))
    assert parse_as_of(None, now=fixed) == dt.datetime(2026, 11, 1, 9)


def test_a_long_value_is_not_echoed_whole() -> None:
    with pytest.raises(AsOfError) as refused:
        parse_as_of("2026-11-01" + "x" * 10_000)
    assert len(str(refused.value)) < len(HINT) + 100
    assert "..." in str(refused.value)


# --------------------------------------------------------------------------- hypothesis

_OFFSETS = st.one_of(
    st.just(""),
    st.just("Z"),
    st.builds(
        lambda sign, hours, minutes, colon: f"{sign}{hours:02d}{colon}{minutes:02d}",
        st.sampled_from("+-"),
        st.integers(0, 14),
        st.integers(0, 59),
        st.sampled_from(["", ":"]),
    ),
)


@st.composite
def iso_texts(draw: st.DrawFn) -> str:
    """Every spelling the parser accepts: date, minutes, seconds, fraction, offset, padding."""
    day = draw(st.dates(dt.date(1900, 1, 1), dt.date(2999, 12, 31)))
    text = day.isoformat()
    precision = draw(st.integers(0, 3))
    if precision:
        text += draw(st.sampled_from("T ")) + (
            f"{draw(st.integers(0, 23)):02d}:{draw(st.integers(0, 59)):02d}"
        )
        if precision >= 2:
            text += f":{draw(st.integers(0, 59)):02d}"
        if precision == 3:
            text += "." + draw(st.text("0123456789", min_size=1, max_size=6))
        text += draw(_OFFSETS)
    pad = st.text(" \t\n\r", max_size=2)
    return draw(pad) + text + draw(pad)


@FAST
@given(text=iso_texts())
def test_every_iso_spelling_is_read_as_python_and_the_macro_read_it(text: str) -> None:
    moment = parse_as_of(text)
    assert moment == _oracle(text)
    assert macro_as_of(text) == moment


@FAST
@given(
    text=iso_texts(), digits=st.sampled_from([ARABIC_INDIC, PERSIAN, FULL_WIDTH]), data=st.data()
)
def test_a_moment_typed_with_other_digits_is_refused(
    text: str, digits: dict[int, str], data: st.DataObject
) -> None:
    positions = [i for i, ch in enumerate(text) if ch.isdigit()]
    chosen = data.draw(st.sets(st.sampled_from(positions), min_size=1))
    typed = "".join(ch.translate(digits) if i in chosen else ch for i, ch in enumerate(text))
    with pytest.raises(AsOfError, match="digits other than ASCII 0-9"):
        parse_as_of(typed)
    assert macro_as_of(typed) is None  # the macro refuses them too


_NEAR_MISS = st.text(
    st.sampled_from([*"0123456789-:T .Z+-\t\n", "\u0660", "\u0661", "\uff10", "\u00a0", "\x00"]),
    max_size=40,
)
hostile = st.one_of(
    st.text(max_size=60),
    _NEAR_MISS,
    st.builds(lambda a, b: a + b, iso_texts(), st.text(max_size=8)),
    st.builds(lambda a, b: a + b, st.text(max_size=8), iso_texts()),
)


@FAST
@given(value=hostile)
def test_hostile_input_is_refused_or_read_exactly_as_python_and_the_macro(value: str) -> None:
    """Accepted: an ASCII ISO moment, read as fromisoformat and the macro read it. Else AsOfError."""
    try:
        moment = parse_as_of(value)
    except AsOfError as refused:
        assert str(refused).startswith(HINT)
        assert len(str(refused)) < len(HINT) + 500  # 40 characters shown, escaped at most
        # The macro accepts more in one way only: it trims all of str.strip()'s white space
        # (no-break spaces, \x1c-\x1f...). The build's preflight refuses those first.
        by_macro = macro_as_of(value)
        if by_macro is not None:
            assert value.strip() != value.strip(ASCII_SPACE), value
            assert parse_as_of(value.strip()) == by_macro
        return
    stripped = value.strip(ASCII_SPACE)
    assert stripped.isascii() and ISO.fullmatch(stripped), value
    assert moment == _oracle(stripped)
    assert macro_as_of(value) == moment


# --------------------------------------------------------------------------- every caller


def test_one_parser_in_the_package() -> None:
    """No other module of cdp defines an as_of parser (the plugin and the purge once disagreed)."""
    defining = sorted(
        str(path.relative_to(ROOT))
        for path in (ROOT / "src" / "cdp").rglob("*.py")
        if re.search(r"^def (parse_)?as_of\b|^_AS_OF\b", path.read_text(), re.M)
    )
    assert defining == ["src/cdp/as_of.py"]


def test_the_build_refuses_other_digits_naming_them() -> None:
    with pytest.raises(ConfigurationError, match="digits other than ASCII 0-9") as refused:
        check_vars({"as_of": "2026-11-01".translate(ARABIC_INDIC)})
    assert "cdp: as_of must be an ISO 8601 date" in str(refused.value)
    check_vars({"as_of": "2026-11-01"})


def test_the_purge_refuses_other_digits_before_it_opens_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = tmp_path / "raw.duckdb"
    arabic = "2026-11-01".translate(ARABIC_INDIC)
    code = purge.main(["--as-of", arabic, "--dry-run", "--raw-db", str(raw)])
    assert code == 1
    err = capsys.readouterr().err
    assert "purge: error: as_of must be an ISO 8601 date" in err
    assert "digits other than ASCII 0-9" in err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_cdp_erase_refuses_a_bad_as_of_before_it_runs_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("CDP_RAW_DB", "CDP_WAREHOUSE_DB", "CDP_VAULT_DB"):
        monkeypatch.setenv(name, str(tmp_path / f"{name}.duckdb"))
    monkeypatch.delenv("CDP_MASTER_KEY_FILE", raising=False)
    monkeypatch.setenv("CDP_MASTER_KEY", secrets.token_urlsafe(48))
    assert erase.main(["--as-of", "2026-11-01".translate(FULL_WIDTH), "--dry-run"]) == 1
    assert "cdp erase: error: as_of must be" in capsys.readouterr().out
    monkeypatch.setenv("CDP_MASTER_KEY", secrets.token_urlsafe(48))
    assert erase.main(["--as-of", "2026-11-01T09:30+99:00"]) == 1  # not the dbt run of step 1
    assert "the UTC offset is out of range" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


def test_a_leap_day_is_a_day_only_in_a_leap_year() -> None:
    assert parse_as_of("2028-02-29") == dt.datetime(2028, 2, 29)
    assert parse_as_of("2000-02-29T23:59:59") == dt.datetime(2000, 2, 29, 23, 59, 59)
    for text in ("2026-02-29", "1900-02-29", "2100-02-29"):
        with pytest.raises(AsOfError, match="no such day in that month"):
            parse_as_of(text)
