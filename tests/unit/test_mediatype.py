"""Media types and Accept-Encoding (RFC 9110 §8.3.1, §12.5.3), as Adobe writes them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.mediatype import accepts_gzip, charset_is_utf8, parse_media_type

FORM = "application/x-www-form-urlencoded"


def test_media_type_as_adobe_writes_it() -> None:
    assert parse_media_type(f"{FORM};charset=UTF-8") == (FORM, (("charset", "UTF-8"),))
    assert parse_media_type(f"{FORM} ; Charset=UTF-8") == (FORM, (("charset", "UTF-8"),))
    assert parse_media_type("A/B;;x=\"y\"") == ("a/b", (("x", "y"),))


@pytest.mark.parametrize("bad", ["", "text", "/x", "a/", "a/b/c", "a/b; c", "a/b; c=1; C=2",
                                 "a b/c", "a/b,c/d"])
def test_malformed_media_types(bad: str) -> None:
    assert parse_media_type(bad) is None


def test_charset() -> None:
    assert charset_is_utf8(())
    assert charset_is_utf8((("charset", "utf-8"),))
    assert charset_is_utf8((("charset", "UTF8"),))
    assert not charset_is_utf8((("charset", "iso-8859-1"),))


@pytest.mark.parametrize(("value", "expected"), [
    ("gzip", True), ("gzip, deflate", True), ("deflate, GZIP;q=0.5", True), ("*", True),
    ("gzip;q=0", False), ("identity", False), (None, False), ("", False),
    ("*;q=0", False), ("br, *;q=0.1", True), ("gzip;q=abc", False), ("*, gzip;q=0", False),
])
def test_accepts_gzip(value: str | None, expected: bool) -> None:
    assert accepts_gzip(value) is expected


@given(st.text(max_size=200))
def test_parsers_never_raise(value: str) -> None:
    parsed = parse_media_type(value)
    assert parsed is None or parsed[0] == parsed[0].lower()
    assert accepts_gzip(value) in (True, False)
