"""Media-type parsing (RFC 9110 §8.3.1) shared by the token endpoint and the routes.

``type/subtype *( OWS ";" OWS parameter )``; type, subtype and parameter names are
case-insensitive, and Adobe writes ``application/x-www-form-urlencoded ; charset=UTF-8``
with spaces around the ``;``. Results are cached: IRIS sends the same few values forever.
"""

from __future__ import annotations

from functools import lru_cache

__all__ = ["MediaType", "charset_is_utf8", "parse_media_type"]

MediaType = tuple[str, tuple[tuple[str, str], ...]]


@lru_cache(maxsize=256)
def parse_media_type(value: str) -> MediaType | None:
    """``(essence, params)`` with lower-cased names, or None when malformed."""
    essence, *raw_params = value.split(";")
    essence = essence.strip().lower()
    kind, slash, subtype = essence.partition("/")
    if not slash or not kind or not subtype or any(c in essence for c in " \t,\"\\"):
        return None
    params: list[tuple[str, str]] = []
    for raw in raw_params:
        name, equals, param_value = raw.strip().partition("=")
        name = name.strip().lower()
        param_value = param_value.strip()
        if not name or not equals:
            return None
        if len(param_value) >= 2 and param_value[0] == param_value[-1] == '"':
            param_value = param_value[1:-1]
        params.append((name, param_value))
    return essence, tuple(params)


def charset_is_utf8(params: tuple[tuple[str, str], ...]) -> bool:
    """True when no charset is given or it is UTF-8 (any case); two charsets are refused."""
    charsets = [value.lower() for name, value in params if name == "charset"]
    return not charsets or (len(charsets) == 1 and charsets[0] in ("utf-8", "utf8"))
