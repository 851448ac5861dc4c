"""Stage 7 of ``pipeline``, the payload: checks that a request body is the JSON its route
promises (docs/configuration.md ``payload``, docs/adobe.md).

``payload_check(route)`` builds a route's ``PayloadCheck`` once per configuration, from one
of four profiles:

- ``aam-segments`` (the default): Adobe's segment push as every Adobe sample agrees on it;
  every other field of Adobe's table optional, and typed when present
  (``profiles.py``, ``aam.py``);
- ``aam-segments-strict``: every field the samples carry, required;
- ``schema``: the route's own JSON Schema (``schema.py``);
- ``none``: any one well-formed UTF-8 JSON document, decoded to ``msgspec.Raw``, which
  parses and checks the whole document without building any object (~1 ms per MB).

A problem is a ``PayloadViolation`` (``400 invalid_payload``) naming the JSON path of the
first problem, e.g. ``Users[0].Segments[1].Status: must be 1 or 0``, and never a value.
Bodies up to ``LARGE_BODY_BYTES`` are checked in one call on the event loop (a 10-user push
takes ~10 us); larger ones a slice at a time, yielding to the loop between slices
(``aam.check_sliced``). The body must be UTF-8 (checked even inside fields that are
only skipped) and one JSON value with nothing after it. Except under ``none``, no object
may hold a key twice (``json_keys.py``): a backend's parser may keep the copy that was not
checked.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

import msgspec

from gateway.config import RouteSettings
from gateway.stages.payload.aam import check_sliced, check_whole
from gateway.stages.payload.errors import (
    PayloadViolation,
    check_utf8,
    check_utf8_sliced,
    decode_error,
)
from gateway.stages.payload.profiles import FAITHFUL, STRICT, Profile

__all__ = ["LARGE_BODY_BYTES", "PayloadCheck", "PayloadViolation", "payload_check",
           "validate_aam_segments", "validate_aam_segments_strict", "validate_json"]

# Above this a body is checked in slices (the memory and loop budget of one small push
# is kept); below it one call costs at most a few milliseconds.
LARGE_BODY_BYTES: Final = 384 * 1024
_JSON_DECODER: Final = msgspec.json.Decoder(msgspec.Raw)
_DECODE_ERRORS = (msgspec.DecodeError, RecursionError, UnicodeDecodeError)


def validate_aam_segments(body: bytes) -> None:
    """Raise ``PayloadViolation`` unless ``body`` is a valid ``aam-segments`` push."""
    check_whole(FAITHFUL, body)


def validate_aam_segments_strict(body: bytes) -> None:
    """Raise ``PayloadViolation`` unless ``body`` is a valid ``aam-segments-strict`` push."""
    check_whole(STRICT, body)


def validate_json(body: bytes) -> None:
    """Raise ``PayloadViolation`` unless ``body`` is one well-formed JSON document."""
    check_utf8(body)
    _parse_json(body)


def _parse_json(body: bytes) -> None:
    try:
        _JSON_DECODER.decode(body)
    except _DECODE_ERRORS as exc:
        raise decode_error(exc) from None


class PayloadCheck:
    """A route's payload profile, compiled once. ``check`` runs on bodies up to
    ``LARGE_BODY_BYTES``; ``check_large`` on larger ones (it yields to the loop)."""

    __slots__ = ("check", "check_large", "profile")

    def __init__(self, profile: str, check: Callable[[bytes], None],
                 check_large: Callable[[bytes], Awaitable[None]]) -> None:
        self.profile = profile
        self.check = check
        self.check_large = check_large


def _aam(profile: Profile) -> PayloadCheck:
    async def large(body: bytes) -> None:
        await check_sliced(profile, body)

    return PayloadCheck(profile.name, lambda body: check_whole(profile, body), large)


async def _large_json(body: bytes) -> None:
    await check_utf8_sliced(body, 4 * 65536)
    _parse_json(body)  # one scan, no objects built: ~1 ms per MB


def payload_check(route: RouteSettings) -> PayloadCheck:
    """The check of ``route``'s ``payload`` profile."""
    if route.payload == "aam-segments":
        return _aam(FAITHFUL)
    if route.payload == "aam-segments-strict":
        return _aam(STRICT)
    if route.payload == "none":
        return PayloadCheck("none", validate_json, _large_json)
    if route.payload_schema is None:
        raise ValueError(f"route {route.path!r} has payload: schema without a schema")
    # Imported here: only a configuration with a schema route loads jsonschema-rs.
    from gateway.stages.payload.schema import SchemaCheck
    from gateway.stages.payload.schema_slices import SlicedSchemaCheck

    schema = SchemaCheck(route.payload_schema)

    async def large_schema(body: bytes) -> None:
        # A schema may look at any part of the document, so it is decoded whole.
        await check_utf8_sliced(body, 4 * 65536)
        schema.check_json(body)

    # A batch rooted in one big array (AEP's {"profiles": [...]}) a slice at a time, when the
    # schema allows it (schema_slices.py).
    sliced = SlicedSchemaCheck.build(route.payload_schema, schema)
    return PayloadCheck("schema", schema, large_schema if sliced is None else sliced)
