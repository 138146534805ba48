"""Normalisers: examples, and hostile input via hypothesis (never raise, idempotent, invariants)."""

from __future__ import annotations

import ipaddress
import os
import re
import time
import unicodedata
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdp.normalise import (
    clean_url,
    device_class,
    normalise_email,
    normalise_identifier,
    normalise_name,
    normalise_phone,
    truncate_ip,
)

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
DEVICE_CLASSES = {"bot", "tablet", "mobile", "desktop", "unknown"}

# Hostile text: any code point except surrogates (which cannot reach us from
# UTF-8 data), control characters included, plus strings built from the
# characters that matter to each parser.
any_text = st.text(st.characters(codec="utf-8"), max_size=300)
huge_text = st.integers(min_value=5_000, max_value=20_000).map(lambda n: "9" * n)
email_ish = st.text(
    alphabet=st.sampled_from(list("aZ.@-_+'\"() \t\u00a0éЁ日ßİ\u0307xn1.рф")), max_size=60
)
phone_ish = st.text(alphabet=st.sampled_from(list("0123456789+()- .#x*\u0663\uff18")), max_size=40)
url_ish = st.builds(
    lambda scheme, body: scheme + body,
    st.sampled_from(["http://", "https://", "HTTP://", "/", "//", "ftp://", "", "mailto:"]),
    st.text(alphabet=st.sampled_from(list("ab.c/?&=#@:%40+7912345678-_~[]; \tЁ\x00")), max_size=80),
)
ip_ish = st.one_of(
    st.ip_addresses().map(str),
    st.text(alphabet=st.sampled_from(list("0123456789abcdef:.%[]f ")), max_size=45),
)
hostile = st.one_of(any_text, huge_text, st.none(), st.integers(), st.binary(max_size=10))

NORMALISERS: list[Callable[[object], str | None]] = [
    normalise_email,
    normalise_phone,
    normalise_name,
    clean_url,
    truncate_ip,
]
# CDP_HYP_EXAMPLES=5000 for a longer hunt; 300 keeps the suite quick.
FAST = settings(
    max_examples=int(os.environ.get("CDP_HYP_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


# --------------------------------------------------------------------------- email


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  John.Doe@Example.COM ", "john.doe@example.com"),
        ("o'brien+tag@mail.ru", "o'brien+tag@mail.ru"),
        ("Иван@Пример.РФ", "иван@xn--e1afmkfd.xn--p1ai"),
        ("ivan@xn--e1afmkfd.xn--p1ai", "ivan@xn--e1afmkfd.xn--p1ai"),
        ("user@sub.example.co.uk.", "user@sub.example.co.uk"),
        ("a@b", None),
        ("a..b@example.com", None),
        (".a@example.com", None),
        ("a@@example.com", None),
        ("a@b@example.com", None),
        ("@example.com", None),
        ("user@", None),
        ("user@-bad-.com", None),
        ("user@1.2.3.4", None),
        ("user name@example.com", None),
        ("x" * 65 + "@example.com", None),
        ("a@" + "b" * 250 + ".com", None),
        ("", None),
        ("   ", None),
        ("n/a", None),
        (None, None),
        (42, None),
    ],
)
def test_email_examples(raw: object, expected: str | None) -> None:
    assert normalise_email(raw) == expected


@FAST
@given(st.one_of(hostile, email_ish))
def test_email_hostile(value: object) -> None:
    out = normalise_email(value)
    if out is not None:
        assert out.count("@") == 1
        assert out == out.lower()
        assert out == out.strip()
        assert len(out.encode()) <= 254
        assert out.split("@")[1].isascii()
        assert normalise_email(out) == out


@FAST
@given(
    st.from_regex(
        r"[a-z0-9]{1,10}(\.[a-z0-9]{1,10}){0,2}@[a-z]{1,10}\.(ru|com|org)", fullmatch=True
    )
)
def test_email_valid_addresses_survive(address: str) -> None:
    assert normalise_email(f"  {address.upper()}  ") == address


# --------------------------------------------------------------------------- phone


@pytest.mark.parametrize(
    "raw",
    [
        "+7 (912) 345-67-89",
        "+7 912 345 67 89",
        "+79123456789",
        "89123456789",
        "8-912-345-67-89",
        "8 (912) 345 67 89",
        "79123456789",
        "7 912 345 67 89",
        "(912) 345-67-89",
        "9123456789",
        " +7(912)3456789 ",
        "\uff18\uff19\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19",  # full-width digits
    ],
)
def test_phone_russian_forms(raw: str) -> None:
    assert normalise_phone(raw) == "+79123456789"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+44 20 7946 0958", "+442079460958"),
        ("+1 650 253 0000", "+16502530000"),
        ("+49 30 901820", "+4930901820"),
        ("+7 495 123-45-67", "+74951234567"),
        ("+70000000000", None),
        ("+7 912 345", None),
        ("n/a", None),
        ("---", None),
        ("\U0001f4de", None),
        ("+", None),
        ("", None),
        ("9" * 10_000, None),
        (None, None),
        (79123456789, None),
    ],
)
def test_phone_examples(raw: object, expected: str | None) -> None:
    assert normalise_phone(raw) == expected


def test_phone_default_region() -> None:
    assert normalise_phone("030 901820", default_region="DE") == "+4930901820"
    assert normalise_phone("030 901820", default_region="de") == "+4930901820"


def test_phone_junk_is_fast() -> None:
    start = time.perf_counter()
    for junk in ["x" * 10_000, "9" * 10_000, "+" + "7" * 10_000, "\U0001f600" * 10_000]:
        assert normalise_phone(junk) is None
    assert time.perf_counter() - start < 0.5


@FAST
@given(st.one_of(hostile, phone_ish))
def test_phone_hostile(value: object) -> None:
    out = normalise_phone(value)
    if out is not None:
        assert E164.match(out)
        assert normalise_phone(out) == out


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Пётр  ", "петр"),
        ("ЁЖИК", "ежик"),
        ("Анна-Мария", "анна-мария"),
        ("O\u2019Brien", "o'brien"),
        ("Mamin \u2013 Sibiryak", "mamin-sibiryak"),
        ("  John   Ronald\tReuel ", "john ronald reuel"),
        ("Ivanov,Ivan", "ivanov ivan"),
        ("Ivan2", "ivan"),
        ("\uff21\uff22\uff23", "abc"),  # full-width letters (NFKC)
        ("Stra\u00dfe", "strasse"),  # case folding
        ("Jose\u0301", "jos\u00e9"),  # NFKC composes
        ("\u1fd6", "\u1fd6"),  # folds to iota + combining perispomeni, which NFKC composes back
        ("\u0399\u0342", "\u1fd6"),  # its upper case: the same name
        ("123", None),
        ("---", None),
        ("", None),
        ("\U0001f600", None),
        (None, None),
    ],
)
def test_name_examples(raw: object, expected: str | None) -> None:
    assert normalise_name(raw) == expected


@FAST
@given(hostile)
def test_name_hostile(value: object) -> None:
    out = normalise_name(value)
    if out is not None:
        assert out == out.strip(" -'")
        assert "  " not in out
        assert "\u0451" not in out
        # case-folded, up to NFKC composition (U+1FD6 folds to iota and a combining mark)
        assert unicodedata.normalize("NFKC", out.casefold()) == out
        assert all(ch in " -'" or unicodedata.category(ch)[0] in "LM" for ch in out)
        assert normalise_name(out) == out


# --------------------------------------------------------------------------- URLs


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            "https://user:pw@Shop.Example.com:8443/p/john@doe.com/79123456789"
            "?utm_source=x&email=a%40b.c&q=shoes&ref=%2B7+912+345+67+89#frag",
            "https://shop.example.com:8443/p/:email/:number?utm_source=x&q=shoes",
        ),
        (
            "https://example.com/catalog?utm_campaign=spring&utm_medium=email&page=2",
            "https://example.com/catalog?utm_campaign=spring&utm_medium=email&page=2",
        ),
        (
            "https://example.com/?phone=89123456789&first_name=Ivan&last_name=Petrov&token=abc"
            "&session=1&user=2&uid=3&user_id=4&customer_id=5&login=x&password=y&tel=7&name=z",
            "https://example.com/",
        ),
        ("https://example.com/?contact=ivan%40mail.ru&x=1", "https://example.com/?x=1"),
        ("https://example.com/?ref=+7%20912%20345%2067%2089", "https://example.com/"),
        ("https://example.com/@ivan/posts", "https://example.com/:user/posts"),
        ("https://example.com/u/ivan%40mail.ru", "https://example.com/u/:email"),
        ("/catalog?phone=1&page=2", "/catalog?page=2"),
        ("http://[2001:db8::1]:8080/x", "http://[2001:db8::1]:8080/x"),
        ("https://example.com", "https://example.com"),
        ("mailto:ivan@mail.ru", None),
        ("not a url", None),
        ("http://", None),
        ("http://example.com:99999/", None),
        ("", None),
        (None, None),
    ],
)
def test_clean_url_examples(raw: object, expected: str | None) -> None:
    assert clean_url(raw) == expected


@FAST
@given(st.one_of(hostile, url_ish))
def test_clean_url_hostile(value: object) -> None:
    out = clean_url(value)
    if out is not None:
        assert "@" not in out
        assert "#" not in out
        assert clean_url(out) == out
        if "?" in out:
            query = out.split("?", 1)[1]
            assert "%40" not in query.upper()


# --------------------------------------------------------------------------- IP


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("203.0.113.77", "203.0.113.0"),
        (" 198.51.100.1 ", "198.51.100.0"),
        ("2001:db8:85a3:1234:5678:8a2e:370:7334", "2001:db8:85a3::"),
        ("[2001:db8:85a3::1]", "2001:db8:85a3::"),
        ("fe80::1%eth0", "fe80::"),
        ("::ffff:203.0.113.9", "203.0.113.0"),
        ("256.1.1.1", None),
        ("010.1.1.1", None),
        ("1.2.3.4:80", None),
        ("junk", None),
        ("", None),
        (None, None),
    ],
)
def test_truncate_ip_examples(raw: object, expected: str | None) -> None:
    assert truncate_ip(raw) == expected


@FAST
@given(st.one_of(hostile, ip_ish))
def test_truncate_ip_hostile(value: object) -> None:
    out = truncate_ip(value)
    if out is not None:
        assert truncate_ip(out) == out
        if ":" not in out:
            assert out.endswith(".0")


@FAST
@given(
    st.lists(
        st.one_of(st.text(alphabet="0123456789", min_size=1, max_size=4), st.sampled_from(" ().-")),
        min_size=1,
        max_size=12,
    ).map("".join),
    st.sampled_from(["", "+", "+7", "8", "+44"]),
)
def test_phone_layout_does_not_change_the_number(body: str, prefix: str) -> None:
    """The cache reads a number without its layout; phonenumbers must agree with it."""
    text = (prefix + body).strip()
    if not text or len(text) > 64 or not any(ch.isdigit() for ch in text):
        return
    assert normalise_phone(text) == phonenumbers_reading(text)


def phonenumbers_reading(text: str) -> str | None:
    """What phonenumbers makes of the text as written (no cache, no layout removed)."""
    from cdp.normalise import _normalise_phone_cached

    return _normalise_phone_cached.__wrapped__(text, "RU")


@FAST
@given(st.integers(min_value=0, max_value=2**128 - 1), st.booleans())
def test_truncate_ip_v6_agrees_with_ipaddress(value: int, exploded: bool) -> None:
    """IPv6 /48 is formatted by hand; it must read as ipaddress prints the network."""
    address = ipaddress.IPv6Address(value)
    text = address.exploded if exploded else str(address)
    if address.ipv4_mapped is not None:
        expected = str(
            ipaddress.ip_network(f"{address.ipv4_mapped}/24", strict=False).network_address
        )
    else:
        expected = str(ipaddress.ip_network(f"{address}/48", strict=False).network_address)
    assert truncate_ip(text) == expected


@pytest.mark.parametrize(
    "value",
    [
        0,
        1,
        2**80,
        2**96,
        2**112,
        0x20010DB8 << 96,
        (0x2001 << 112) | (5 << 80),
        0xFFFF << 80,
        (0xFFFF << 32) | 0x01020304,
    ],
)
def test_truncate_ip_v6_zero_groups(value: int) -> None:
    address = ipaddress.IPv6Address(value)
    mapped = address.ipv4_mapped
    network = f"{mapped}/24" if mapped is not None else f"{address}/48"
    expected = str(ipaddress.ip_network(network, strict=False).network_address)
    assert truncate_ip(str(address)) == expected


_octet_text = st.one_of(
    st.integers(min_value=0, max_value=999).map(str),
    st.integers(min_value=0, max_value=99).map(lambda n: f"0{n}"),  # leading zeros
    st.text(alphabet="0123456789\u0663\u0661e+- ", max_size=4),  # with Arabic-Indic digits
)


@FAST
@given(st.lists(_octet_text, min_size=4, max_size=4).map(".".join))
def test_truncate_ip_fast_path_agrees_with_ipaddress(text: str) -> None:
    """Dotted quads skip ``ipaddress``; the answer must be the one ``ipaddress`` gives."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        expected = None
    else:
        expected = str(ipaddress.ip_network(f"{address}/24", strict=False).network_address)
    assert truncate_ip(text) == expected


# --------------------------------------------------------------------------- devices


@pytest.mark.parametrize(
    ("ua", "expected"),
    [
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
            "mobile",
        ),
        (
            "Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/120.0 Mobile Safari/537.36",
            "mobile",
        ),
        (
            "Mozilla/5.0 (Linux; Android 13; SM-X200) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/120.0 Safari/537.36",
            "tablet",
        ),
        ("Mozilla/5.0 (iPad; CPU OS 16_0 like Mac OS X) AppleWebKit/605.1.15", "tablet"),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/120.0 Safari/537.36",
            "desktop",
        ),
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) Safari/605.1.15", "desktop"),
        ("Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0", "desktop"),
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "bot"),
        ("Mozilla/5.0 (compatible; YandexBot/3.0)", "bot"),
        ("Mozilla/5.0 HeadlessChrome/120.0", "bot"),
        ("curl/8.4.0", "bot"),
        ("python-requests/2.31", "bot"),
        ("", "unknown"),
        ("zzz", "unknown"),
        (None, None),
    ],
)
def test_device_class_examples(ua: str | None, expected: str | None) -> None:
    assert device_class(ua) == expected


@FAST
@given(st.one_of(hostile, st.text(max_size=20).map(lambda s: "Android " * 500 + s)))
def test_device_class_hostile(value: object) -> None:
    out = device_class(value)
    assert out is None if value is None else out in DEVICE_CLASSES


# --------------------------------------------------------------------------- all


@FAST
@given(hostile)
def test_no_normaliser_raises(value: object) -> None:
    for normaliser in NORMALISERS:
        out = normaliser(value)
        assert out is None or (isinstance(out, str) and out != "")


def test_huge_inputs_are_quick() -> None:
    start = time.perf_counter()
    for value in ["a" * 10_000, "@" * 10_000, "9" * 10_000, "\U0001f600" * 10_000, " " * 10_000]:
        for normaliser in [*NORMALISERS, device_class]:
            normaliser(value)
    assert time.perf_counter() - start < 1.0


def test_normalise_identifier_mirrors_sql_macros() -> None:
    assert normalise_identifier("customer_id", "  C-001 ") == "C-001"
    assert normalise_identifier("customer_id", "   ") is None
    assert normalise_identifier("anonymous_id", " AbC ") == "abc"
    assert normalise_identifier("push_token", "TOK") == "tok"
    assert normalise_identifier("loyalty_card", "ab-12 34") == "AB1234"
    assert normalise_identifier("email", " A@B.RU ") == "a@b.ru"
    assert normalise_identifier("phone", "89123456789") == "+79123456789"
    with pytest.raises(ValueError, match="unknown identifier type"):
        normalise_identifier("passport", "x")
