"""Normalisers for identifiers and quasi-identifiers.

Every function takes any value (``None``, non-strings, hostile text), never
raises, and returns ``None`` for a value that is empty or invalid. All are
idempotent: ``f(f(x)) == f(x)``. Pseudonyms are computed over their outputs,
so two spellings of one identifier must normalise to the same text.

Inputs longer than a generous limit per kind are refused (``None``) before any
parsing, so a 10,000-character value costs microseconds.

* :func:`normalise_email`: trimmed, NFC, lower case, IDN domain in punycode
  (IDNA 2008 with UTS #46 mapping), syntax checked: one ``@``, a dot-atom local
  part of at most 64 bytes (ASCII ``atext`` or Unicode letters, digits and
  marks, RFC 6531), a domain of at least two LDH labels of 1-63 characters
  with a non-numeric TLD, at most 254 bytes in all.
* :func:`normalise_phone`: E.164 (``+79123456789``) with ``phonenumbers``,
  default region ``RU`` for numbers written without a country code (so
  ``8 912 ...``, ``7912...``, ``(912) 345-67-89`` all become ``+7912...``).
  Only numbers for which ``phonenumbers.is_valid_number`` holds are kept: the
  metadata knows the number ranges actually assigned, so junk such as
  ``+70000000000`` or a truncated number is refused rather than becoming an
  identifier that glues strangers together. ``is_possible_number`` (length
  only) was rejected for that reason.
* :func:`normalise_name`: NFKC, Unicode case folding (lower case: for matching,
  not display), ``ё`` -> U+0435 (Cyrillic ie), typographic apostrophes and dashes unified,
  punctuation and separators turned into a space, everything else but letters,
  combining marks, ``-`` and ``'`` (digits, symbols, controls) dropped,
  whitespace collapsed, no space around ``-`` and ``'``.
* :func:`clean_url`: scheme, host, port and path kept; user info, fragment and
  identifying query parameters dropped (by name, or because the value looks
  like an email or phone number; ``utm_*`` and other parameters kept); path
  segments holding an email, an ``@handle`` or a phone-length digit run are
  replaced by ``:email``, ``:user`` or ``:number``.
* :func:`truncate_ip`: IPv4 to its /24 network address, IPv6 to its /48
  (IPv4-mapped IPv6 counts as IPv4).
* :func:`device_class`: ``bot``, ``tablet``, ``mobile``, ``desktop`` or
  ``unknown`` from a user agent, by the rules in :data:`DEVICE_RULES`, first
  match wins.
* :func:`identifiers_in_text`: the emails and phone numbers inside free text
  (a URL, percent-encoded or not, a search query, a JSON document), found by
  the same patterns :func:`clean_url` removes and normalised as above (for the
  erasure: a device that typed a person's email is that person's).
* :func:`normalise_identifier`: the normaliser of an identifier type, mirroring
  the SQL macros in ``macros/privacy/normalise.sql`` (for the vault tool).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import re
import unicodedata
from collections.abc import Callable
from functools import lru_cache
from typing import Final
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import idna
import phonenumbers

__all__ = [
    "DEVICE_RULES",
    "clean_url",
    "device_class",
    "identifiers_in_forms",
    "identifiers_in_text",
    "normalise_email",
    "normalise_identifier",
    "normalise_name",
    "normalise_phone",
    "truncate_ip",
]

# --------------------------------------------------------------------------- email

MAX_EMAIL_INPUT: Final = 512
_LOCAL_ASCII: Final = frozenset("abcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+/=?^_`{|}~-")
_LABEL: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def _local_char_ok(ch: str) -> bool:
    if ch in _LOCAL_ASCII:
        return True
    if ch.isascii():
        return False
    return unicodedata.category(ch)[0] in "LNM"


def _valid_local(local: str) -> bool:
    if not local or len(local.encode("utf-8")) > 64:
        return False
    if local.startswith(".") or local.endswith(".") or ".." in local:
        return False
    return all(ch == "." or _local_char_ok(ch) for ch in local)


def _ascii_domain(domain: str) -> str | None:
    domain = domain.removesuffix(".")
    if not domain or len(domain) > 253:
        return None
    if domain.isascii():
        ascii_domain = domain
    else:
        try:
            ascii_domain = idna.encode(domain, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError, ValueError):
            return None
    labels = ascii_domain.split(".")
    if len(labels) < 2 or len(ascii_domain) > 253:
        return None
    if not all(_LABEL.fullmatch(label) for label in labels):
        return None
    if labels[-1].isdigit():
        return None
    for label in labels:
        if label.startswith("xn--"):
            try:
                idna.decode(label)
            except (idna.IDNAError, UnicodeError, ValueError):
                return None
    return ascii_domain


#: Normalisers run once per raw row inside one dbt process: a cache per function
#: makes a value seen before (a cookie's IP, a page URL, a customer's email in
#: their orders) cost a lookup. Bounded, so memory stays flat at any scale.
CACHE_SIZE: Final = 1 << 18
#: Phones cost ~30 µs each in phonenumbers and every source has them (CRM,
#: orders, SMS recipients, the vault): room for every number of a few million
#: customers, so each is parsed once per build (~300 bytes an entry).
PHONE_CACHE_SIZE: Final = 1 << 21


def normalise_email(value: object) -> str | None:
    """A valid email address, trimmed, lower case, NFC, punycode domain; else None."""
    if not isinstance(value, str):
        return None
    return _normalise_email_cached(value)


@lru_cache(maxsize=CACHE_SIZE)
def _normalise_email_cached(value: str) -> str | None:
    text = value.strip()
    if not text or len(text) > MAX_EMAIL_INPUT:
        return None
    text = unicodedata.normalize("NFC", unicodedata.normalize("NFC", text).lower())
    if text.count("@") != 1:
        return None
    local, domain = text.split("@")
    if not _valid_local(local):
        return None
    ascii_domain = _ascii_domain(domain)
    if ascii_domain is None:
        return None
    address = f"{local}@{ascii_domain}"
    if len(address.encode("utf-8")) > 254:
        return None
    return address


# --------------------------------------------------------------------------- phone

MAX_PHONE_INPUT: Final = 64
_PHONE_LAYOUT: Final = re.compile(r"[ ().\-]+")
_PHONE_PLAIN: Final = re.compile(r"\+?[0-9]{1,20}")
DEFAULT_PHONE_REGION: Final = "RU"


@lru_cache(maxsize=PHONE_CACHE_SIZE)
def _normalise_phone_cached(text: str, region: str) -> str | None:
    try:
        number = phonenumbers.parse(text, region)
    except Exception:  # NumberParseException, or anything on hostile input: refuse
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    e164: str = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return e164


def normalise_phone(value: object, default_region: str = DEFAULT_PHONE_REGION) -> str | None:
    """The number in E.164 (``+79123456789``) if it is a valid number, else None.

    ``default_region`` (ISO 3166-1 alpha-2) applies to numbers written without
    a country code.
    """
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or len(text) > MAX_PHONE_INPUT or not any(ch.isdigit() for ch in text):
        return None
    region = default_region.upper() if isinstance(default_region, str) else ""
    # Spaces, brackets, dots and dashes never change what phonenumbers reads
    # (it drops them first): one cache entry per number however it is written.
    plain = _PHONE_LAYOUT.sub("", text)
    if _PHONE_PLAIN.fullmatch(plain):
        text = plain
    return _normalise_phone_cached(text, region or DEFAULT_PHONE_REGION)


# --------------------------------------------------------------------------- names

MAX_NAME_INPUT: Final = 1024
_NAME_FIXED: Final[dict[int, str]] = {
    **dict.fromkeys(map(ord, "\u2019\u2018\u02bc\u02bb\u0060\u00b4\u2032"), "'"),
    **dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2013\u2014\u2015\u2212"), "-"),
    0x0451: "\u0435",  # yo -> ie
    0x0401: "\u0415",
}
_NAME_JOINERS: Final = re.compile(r" *([-']) *")
_NAME_RUNS: Final = re.compile(r"-{2,}|'{2,}| {2,}")
_NAME_UNSTABLE: Final = re.compile(r" [-']|[-'] |--|''|  ")


def _name_char(ch: str) -> str:
    """Letters, marks, space, ``-`` and ``'`` stay; separators and punctuation
    become a space (``"Ivanov,Ivan"`` is two words); anything else is dropped."""
    if ch in " -'":
        return ch
    category = unicodedata.category(ch)[0]
    if category in "LM":
        return ch
    if category in "PZ" or ch.isspace():
        return " "
    return ""


class _NameTable(dict[int, str]):
    """``str.translate`` table computed on first use of each code point."""

    def __missing__(self, code: int) -> str:
        out = _name_char(chr(code))
        if len(self) < 200_000:
            self[code] = out
        return out


_NAME_TABLE: Final = _NameTable(_NAME_FIXED)


def _name_pass(text: str) -> str:
    text = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    text = text.translate(_NAME_TABLE)
    text = _NAME_JOINERS.sub(r"\1", text)
    text = _NAME_RUNS.sub(lambda m: m.group()[0], text)
    return text.strip(" -'")


def _name_stable(text: str) -> bool:
    """True when another pass would not change ``text``. Case-folded up to NFKC: a few letters
    (U+1FD6 GREEK SMALL LETTER IOTA WITH PERISPOMENI) fold to a letter and a combining mark
    that NFKC composes back, so no text is both NFKC and unchanged by casefold()."""
    return (
        unicodedata.is_normalized("NFKC", text)
        and unicodedata.normalize("NFKC", text.casefold()) == text
        and text.translate(_NAME_TABLE) == text
        and _NAME_UNSTABLE.search(text) is None
        and text == text.strip(" -'")
    )


@lru_cache(maxsize=CACHE_SIZE)
def _normalise_name_cached(value: str) -> str | None:
    text = _name_pass(value)
    for _ in range(4):  # NFKC, case folding and filtering can interact: reach a fixed point
        if _name_stable(text):
            break
        text = _name_pass(text)
    if not any(unicodedata.category(ch)[0] == "L" for ch in text):
        return None
    return text


def normalise_name(value: object) -> str | None:
    """A person or place name for matching: lower case (case-folded), letters only."""
    if not isinstance(value, str) or len(value) > MAX_NAME_INPUT:
        return None
    return _normalise_name_cached(value)


# --------------------------------------------------------------------------- URLs

MAX_URL_INPUT: Final = 8192
SENSITIVE_QUERY_KEYS: Final = frozenset(
    {
        "email",
        "e_mail",
        "mail",
        "phone",
        "tel",
        "telephone",
        "mobile",
        "msisdn",
        "name",
        "first_name",
        "firstname",
        "last_name",
        "lastname",
        "middle_name",
        "full_name",
        "fullname",
        "fio",
        "token",
        "access_token",
        "id_token",
        "refresh_token",
        "auth",
        "code",
        "session",
        "session_id",
        "sessionid",
        "sid",
        "user",
        "username",
        "user_name",
        "uid",
        "user_id",
        "userid",
        "customer",
        "customer_id",
        "customerid",
        "client_id",
        "login",
        "password",
        "passwd",
        "pass",
        "pwd",
        "passport",
        "address",
        "birth_date",
        "birthday",
        "dob",
        "card",
        "card_number",
        "ip",
    }
)
_SENSITIVE_KEY_PARTS: Final = (
    "email",
    "phone",
    "token",
    "session",
    "passw",
    "secret",
    "apikey",
    "api_key",
)
_DIGIT_RUN: Final = re.compile(r"\+?\d(?:[\s().\-]*\d){9,}")
_EMAIL_LIKE: Final = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_SCHEME: Final = re.compile(r"[a-z][a-z0-9+.\-]*")
_PCHAR: Final = ":~!$&'()*+,;=-._"
_HOST: Final = re.compile(r"[^\s\x00-\x1f\x7f/\\?#@]+")


def _sensitive_key(key: str) -> bool:
    k = key.strip().lower().replace("-", "_")
    if k in SENSITIVE_QUERY_KEYS:
        return True
    return any(part in k for part in _SENSITIVE_KEY_PARTS)


def _sensitive_value(value: str) -> bool:
    return "@" in value or _DIGIT_RUN.search(value) is not None


def _clean_segment(segment: str) -> str:
    decoded = unquote(segment)
    if "@" in decoded:
        return ":email" if _EMAIL_LIKE.search(decoded) else ":user"
    if _DIGIT_RUN.search(decoded):
        return quote(_DIGIT_RUN.sub(":number", decoded), safe=_PCHAR)
    # Whitespace, controls and non-ASCII are percent-encoded; existing escapes stay.
    return quote(segment, safe=_PCHAR + "%")


def clean_url(value: object) -> str | None:
    """The URL without identifying parts (see module doc), or None if it is not a URL."""
    if not isinstance(value, str):
        return None
    return _clean_url_cached(value)


@lru_cache(maxsize=CACHE_SIZE)
def _clean_url_cached(value: str) -> str | None:
    text = value.strip()
    if not text or len(text) > MAX_URL_INPUT:
        return None
    try:
        parts = urlsplit(text)
        scheme = parts.scheme.lower()
        host = parts.hostname
        port = parts.port
    except ValueError:
        return None
    if scheme:
        if not _SCHEME.fullmatch(scheme) or not host or not _HOST.fullmatch(host):
            return None
        netloc = f"[{host}]" if ":" in host else host
        if port is not None:
            netloc = f"{netloc}:{port}"
    else:
        if parts.netloc or not parts.path.startswith("/"):
            return None
        netloc = ""
    path = "/".join(_clean_segment(seg) for seg in parts.path.split("/"))
    if not scheme and path.startswith("//"):
        return None
    query_items = parse_qsl(parts.query, keep_blank_values=True)
    kept = [(k, v) for k, v in query_items if not _sensitive_key(k) and not _sensitive_value(v)]
    kept = [(k, v) for k, v in kept if "@" not in k]
    query = urlencode(kept)
    result = urlunsplit((scheme, netloc, path, query, ""))
    return None if "@" in result else result


# --------------------------------------------------------------------------- IP


#: A dotted-quad IPv4 address as ``ipaddress`` accepts it (no leading zeros).
_OCTET: Final = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4: Final = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}")


def truncate_ip(value: object) -> str | None:
    """IPv4 -> its /24 network address, IPv6 -> its /48; None if not an IP address."""
    if not isinstance(value, str):
        return None
    return _truncate_ip_cached(value)


@lru_cache(maxsize=CACHE_SIZE)
def _truncate_ip_cached(value: str) -> str | None:
    text = value.strip()
    if not text or len(text) > 64:
        return None
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    text = text.split("%", 1)[0]  # drop an IPv6 zone id
    quad = _IPV4.fullmatch(text)
    if quad is not None:  # the common case, ten times cheaper than ipaddress
        return f"{quad[1]}.{quad[2]}.{quad[3]}.0"
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.version == 4:
        network = ipaddress.ip_network(f"{address}/24", strict=False)
        return str(network.network_address)
    # The /48 keeps three groups and zeroes five: that zero run is the longest, so
    # the compressed form (RFC 5952, as ipaddress prints it) is the kept groups
    # up to the last non-zero one, then "::". Four times cheaper than ip_network.
    number = int(address)
    groups = [(number >> shift) & 0xFFFF for shift in (112, 96, 80)]
    while groups and groups[-1] == 0:
        groups.pop()
    return ":".join(f"{group:x}" for group in groups) + "::"


# --------------------------------------------------------------------------- devices

MAX_USER_AGENT: Final = 1024

#: (class, pattern) in order; the first pattern found in the user agent wins.
#: Android without "Mobile" is a tablet (Google's convention for Chrome);
#: iPadOS 13+ in desktop mode announces itself as a Mac and counts as desktop.
DEVICE_RULES: Final[tuple[tuple[str, re.Pattern[str]], ...]] = (
    (
        "bot",
        re.compile(
            r"bot\b|bot/|crawl|spider|slurp|archiver|facebookexternalhit|embedly|preview|"
            r"headless|phantomjs|lighthouse|pingdom|uptime|monitor|python-requests|"
            r"python-urllib|aiohttp|curl/|wget/|libwww|httpclient|go-http-client|java/|"
            r"scrapy",
            re.IGNORECASE,
        ),
    ),
    (
        "tablet",
        re.compile(
            r"ipad|tablet|kindle|silk/|playbook|nexus (?:7|9|10)\b|sm-t\d|"
            r"android(?!.{0,200}mobile)",
            re.IGNORECASE,
        ),
    ),
    (
        "mobile",
        re.compile(
            r"mobile|iphone|ipod|android|windows phone|iemobile|blackberry|bb10|"
            r"opera mini|webos|symbian|nokia",
            re.IGNORECASE,
        ),
    ),
    (
        "desktop",
        re.compile(r"windows nt|macintosh|mac os x|x11|linux|cros|freebsd|openbsd", re.IGNORECASE),
    ),
)


@lru_cache(maxsize=16384)
def _device_class_cached(text: str) -> str:
    for name, pattern in DEVICE_RULES:
        if pattern.search(text):
            return name
    return "unknown"


def device_class(value: object) -> str | None:
    """``bot``, ``tablet``, ``mobile``, ``desktop`` or ``unknown``; None for None."""
    if value is None:
        return None
    if not isinstance(value, str):
        return "unknown"
    text = value.strip()[:MAX_USER_AGENT]
    if not text:
        return "unknown"
    return _device_class_cached(text)


# --------------------------------------------------------------------------- identifiers


#: What DuckDB's ``trim()`` strips: the Unicode space separators (category Zs),
#: not tabs or line breaks. Measured over every code point (pytests/test_hostile.py).
DUCKDB_TRIM_CHARS: Final = "".join(
    chr(c) for c in (0x20, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x202F, 0x205F, 0x3000)
)


def duckdb_trim(text: str) -> str:
    """``trim(text)`` as DuckDB computes it."""
    return text.strip(DUCKDB_TRIM_CHARS)


def duckdb_lower(text: str) -> str:
    """``lower(text)`` as DuckDB computes it: the simple, per-character lower case.

    Python's ``str.lower`` applies the full mapping (``'İ'`` becomes two code
    points) and the final-sigma rule; DuckDB does neither.
    """
    return "".join("i" if ch == "\u0130" else ch.lower() for ch in text)


def _normalise_key(value: object) -> str | None:
    # SQL: nullif(trim(value), '')
    if not isinstance(value, str):
        return None
    return duckdb_trim(value) or None


def _normalise_token(value: object) -> str | None:
    # SQL: nullif(lower(trim(value)), '')
    if not isinstance(value, str):
        return None
    return duckdb_lower(duckdb_trim(value)) or None


def _normalise_card(value: object) -> str | None:
    # SQL: nullif(upper(regexp_replace(value, '[^0-9A-Za-z]', '', 'g')), '')
    if not isinstance(value, str):
        return None
    return re.sub(r"[^0-9A-Za-z]", "", value).upper() or None


IDENTIFIER_NORMALISERS: Final[dict[str, Callable[[object], str | None]]] = {
    "customer_id": _normalise_key,
    "email": normalise_email,
    "phone": normalise_phone,
    "anonymous_id": _normalise_token,
    "push_token": _normalise_token,
    "loyalty_card": _normalise_card,
}


def normalise_identifier(id_type: str, value: object) -> str | None:
    """Normalise ``value`` as the staging models do for identifier type ``id_type``."""
    normaliser = IDENTIFIER_NORMALISERS.get(id_type)
    if normaliser is None:
        raise ValueError(
            f"unknown identifier type {id_type!r}; known: {sorted(IDENTIFIER_NORMALISERS)}"
        )
    return normaliser(value)


# --------------------------------------------------------------------------- free text

MAX_FREE_TEXT: Final = 65536
_JSON_START: Final = re.compile(r"\s*[\[{]")


def _strings_of(document: object) -> list[str]:
    """Every string (keys too) of a parsed JSON document, depth first."""
    found: list[str] = []
    stack = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, dict):
            for key, value in item.items():
                found.append(str(key))
                stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)
    return found


MAX_DECODE_LAYERS: Final = 5
_TEXT_EMAIL: Final = re.compile(r"[^\s@<>()\[\]{}\"',;:?&=/|#]+@[^\s@<>()\[\]{}\"',;:?&=/|#]+")
# A phone number in free text: what the URL cleaner removes, with any dash, slash or dot
# between the digits, and an international 00 prefix.
_TEXT_PHONE: Final = re.compile(r"(?:\+|00)?\d(?:[\s().\-/\u2010-\u2015\u2212]*\d){9,}")


def decoded_forms(value: str) -> set[str]:
    """The text as typed, NFKC-normalised, and percent-decoded layer by layer until stable.

    ``+`` is read as a space and kept as a plus (a phone number's country prefix) alike.
    """
    forms = {value, unicodedata.normalize("NFKC", value)}
    for start in list(forms):
        plus_kept, plus_space = start, start
        for _ in range(MAX_DECODE_LAYERS):
            if "%" not in plus_kept and "%" not in plus_space:
                break
            plus_kept, plus_space = unquote(plus_kept), unquote(plus_space.replace("+", " "))
            forms.update((plus_kept, plus_space))
    return forms


def identifiers_in_text(value: object) -> set[tuple[str, str]]:
    """(``email`` | ``phone``, normalised value) for every identifier inside free text.

    The text is read in every form :func:`decoded_forms` gives (as typed, NFKC,
    percent-decoded to the last layer), and as JSON when it is a JSON object or
    array (every key and string value). Candidates are what :func:`clean_url`
    treats as identifying (an ``@`` address, a run of ten or more digits with
    phone layout, here with any dash or slash between them and a ``00``
    prefix), kept when :func:`normalise_email` or :func:`normalise_phone`
    accepts them. Never raises.
    """
    if not isinstance(value, str) or not value or len(value) > MAX_FREE_TEXT:
        return set()
    return identifiers_in_forms(decoded_forms(value))


def identifiers_in_forms(forms: set[str]) -> set[tuple[str, str]]:
    """:func:`identifiers_in_text` over forms :func:`decoded_forms` already gave."""
    texts = {text for text in forms if len(text) <= MAX_FREE_TEXT}
    for text in list(texts):
        if _JSON_START.match(text):
            with contextlib.suppress(ValueError, RecursionError):
                texts.update(_strings_of(json.loads(text)))
    found: set[tuple[str, str]] = set()
    for text in texts:
        if "@" in text:
            for candidate in _TEXT_EMAIL.findall(text):
                email = normalise_email(candidate.strip(".").rstrip("."))
                if email is not None:
                    found.add(("email", email))
        for match in _TEXT_PHONE.finditer(text):
            digits = re.sub(r"[^\d+]", "", match.group(0))
            phone = normalise_phone("+" + digits[2:] if digits.startswith("00") else digits)
            if phone is not None:
                found.add(("phone", phone))
    return found
