"""HTTP field values shared by the token endpoint, the routes and the forwarder.

* Media types (RFC 9110 §8.3.1): ``type/subtype *( OWS ";" OWS [ parameter ] )``; type,
  subtype and parameter names are case-insensitive, and Adobe writes
  ``application/x-www-form-urlencoded ; charset=UTF-8`` with spaces around the ``;``.
* ``Accept-Encoding`` (RFC 9110 §12.5.3): whether gzip is acceptable.

Both are cached: IRIS sends the same few values for ever, and a dict hit is cheaper than
parsing on every request.
"""

from __future__ import annotations

from functools import lru_cache

__all__ = ["MediaType", "accepts_gzip", "charset_is_utf8", "parse_media_type"]

MediaType = tuple[str, tuple[tuple[str, str], ...]]
_BAD_ESSENCE = frozenset(' \t",=;\\')
_BAD_NAME = frozenset(' \t"\\')


@lru_cache(maxsize=256)
def parse_media_type(value: str) -> MediaType | None:
    """``(essence, params)`` with lower-cased names, or None when malformed (a repeated
    parameter included: which of the two would a backend believe?)."""
    essence, *raw_params = value.split(";")
    essence = essence.strip(" \t").lower()
    kind, slash, subtype = essence.partition("/")
    if not slash or not kind or not subtype or "/" in subtype \
            or not _BAD_ESSENCE.isdisjoint(essence):
        return None
    params: list[tuple[str, str]] = []
    for raw in raw_params:
        raw = raw.strip(" \t")
        if not raw:
            continue  # RFC 9110 §5.6.6: an empty parameter is allowed
        name, equals, param_value = raw.partition("=")
        name = name.lower()
        if not name or not equals or not _BAD_NAME.isdisjoint(name) \
                or any(name == seen for seen, _ in params):
            return None
        if len(param_value) >= 2 and param_value[0] == param_value[-1] == '"':
            param_value = param_value[1:-1]
        params.append((name, param_value))
    return essence, tuple(params)


def charset_is_utf8(params: tuple[tuple[str, str], ...]) -> bool:
    """True when no charset is given or it is UTF-8 (any case)."""
    for name, value in params:
        if name == "charset":
            return value.lower() in ("utf-8", "utf8")
    return True


@lru_cache(maxsize=64)
def accepts_gzip(value: str | None) -> bool:
    """gzip (or ``*``) listed with a non-zero weight; an explicit ``gzip;q=0`` wins over
    ``*``; no header means identity only (we never compress unasked)."""
    if not value:
        return False
    star = False
    for item in value.split(","):
        coding, *params = item.strip(" \t").lower().split(";")
        quality = 1.0
        for param in params:
            name, _, raw = param.strip(" \t").partition("=")
            if name == "q":
                try:
                    quality = float(raw)
                except ValueError:
                    quality = 0.0
        coding = coding.strip(" \t")
        if coding in ("gzip", "x-gzip"):
            return quality > 0
        if coding == "*":
            star = quality > 0
    return star
