"""The one parser of ``as_of``, the moment a build or a purge is judged at.

Used by the dbt plugin's preflight (``--vars '{as_of: ...}'``), the purge
(``--as-of``) and ``cdp erase`` (``--as-of``), by the rules of the dbt macro
``macros/consent/as_of.sql`` (the tests prove the two agree on every value
this parser accepts):

* an ISO 8601 date (``2026-11-01``: midnight UTC) or timestamp
  (``2026-11-01T09:30``, ``2026-11-01 09:30:00.5``), optionally with ``Z``
  or an offset (``+03:00``, ``-0130``), which is converted to UTC;
* ASCII digits only (decision 55): a date typed with Arabic-Indic (U+0660 to
  U+0669), full-width or any other digits is refused with a message that says
  so, never read as a date;
* years 1900 to 2999, offsets up to 14:59; surrounding ASCII white space is
  ignored, any other character refused.

The result is a naive datetime in UTC. An error names the rule and shows at
most 40 characters of what was given.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Final

HINT: Final = (
    "as_of must be an ISO 8601 date or UTC timestamp in ASCII digits, e.g. 2026-11-01 or "
    "2026-11-01T09:30:00Z (an offset such as +03:00 is converted to UTC); leave it unset "
    "(null) to use the start of the run"
)
_PATTERN: Final = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"(?:[T ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:[.]([0-9]{1,6}))?)?"
    r"(Z|[+-][0-9]{2}:?[0-9]{2})?)?"
)
_ASCII_SPACE: Final = " \t\n\r\f\v"
_SHOWN: Final = 40
YEARS: Final = (1900, 2999)


class AsOfError(ValueError):
    """An ``as_of`` value that is not a moment by the rules of this module."""


def _shown(text: str) -> str:
    return repr(text[:_SHOWN] + ("..." if len(text) > _SHOWN else ""))


def _text(value: object) -> str:
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value).strip(_ASCII_SPACE)


def parse_as_of(value: object, *, now: dt.datetime | None = None) -> dt.datetime:
    """``value`` as a naive UTC datetime; None means ``now`` (default: the current time).

    A ``date`` or ``datetime`` (what YAML makes of an unquoted ``--vars`` value)
    is read through its ISO text, so it follows the same rules. Raises
    :class:`AsOfError` naming the problem.
    """
    if value is None:
        moment = now or dt.datetime.now(dt.UTC)
        return moment.astimezone(dt.UTC).replace(tzinfo=None) if moment.tzinfo else moment
    text = _text(value)
    if not text.isascii():
        if any(ch.isdecimal() and not ch.isascii() for ch in text):
            problem = "digits other than ASCII 0-9: type the date with 0-9"
        else:
            problem = "a character that is not ASCII"
        raise AsOfError(f"{HINT}; got {_shown(text)} ({problem})")
    found = _PATTERN.fullmatch(text)
    if found is None:
        raise AsOfError(f"{HINT}; got {_shown(text)}")
    year, month, day, hour, minute, second, fraction, offset = found.groups()
    if not YEARS[0] <= int(year) <= YEARS[1]:
        raise AsOfError(f"{HINT}; got {_shown(text)} (the year is out of range)")
    if 1 <= int(month) <= 12 and 29 <= int(day) <= 31:
        # as the macro (macros/consent/as_of.sql) says it: each refuses what the other would
        try:
            dt.date(int(year), int(month), int(day))
        except ValueError:
            raise AsOfError(f"{HINT}; got {_shown(text)} (no such day in that month)") from None
    try:
        moment = dt.datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0").ljust(6, "0")),
        )
    except ValueError:
        raise AsOfError(f"{HINT}; got {_shown(text)} (a field is out of range)") from None
    if offset and offset != "Z":
        digits = offset[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:])
        if hours > 14 or minutes > 59:
            raise AsOfError(f"{HINT}; got {_shown(text)} (the UTC offset is out of range)")
        shift = dt.timedelta(hours=hours, minutes=minutes)
        moment = moment - shift if offset[0] == "+" else moment + shift
    return moment
