"""How the payload stage words a problem: ``PayloadViolation`` carries the JSON path of the
first problem, a bounded reason for metrics, and a description that names no value of the
body (docs/configuration.md ``payload``).

msgspec says ``Expected `str`, got `int` - at `$.Users[0].AAM_UUID```; ``describe`` turns
that into ``Users[0].AAM_UUID: must be a non-empty string (got integer)`` with the rule
written for the field, so a description never quotes what the caller sent.
"""

from __future__ import annotations

import asyncio
import codecs
import re
from collections.abc import Mapping
from typing import Final, Literal

import msgspec

from gateway.errors import InvalidPayloadError

__all__ = [
    "ROOT",
    "PayloadViolation",
    "Reason",
    "check_utf8",
    "check_utf8_sliced",
    "clean",
    "decode_error",
    "describe",
]

Reason = Literal["malformed", "missing_field", "invalid_value"]
ROOT: Final = "payload"
_MAX_PATH = 120
_UNSAFE = re.compile(r"[^\x20-\x21\x23-\x5b\x5d-\x7e]")
_MISSING = re.compile(r"Object missing required field `(?P<name>[^`]*)`")
_GOT = re.compile(r"got `(?P<type>[a-z]+)`")
_LAST_NAME = re.compile(r"(?:^|\.)(?P<name>[^.\[]*)(?P<index>\[\d+\])?$")
_FIRST_INDEX = re.compile(r"\[(?P<index>\d+)\]")
_JSON_TYPES: Final[dict[str, str]] = {
    "str": "string", "int": "integer", "float": "number", "bool": "boolean",
    "null": "null", "array": "array", "object": "object",
}  # fmt: skip


class PayloadViolation(InvalidPayloadError):
    """400 invalid_payload: the body fails the route's payload profile. ``path`` is the JSON
    path of the first problem (``payload`` for the whole document) and ``reason`` one of
    ``malformed``, ``missing_field``, ``invalid_value``: both safe to log and count."""

    def __init__(self, path: str, rule: str, reason: Reason) -> None:
        self.path = clean(path or ROOT, _MAX_PATH)
        self.reason: Reason = reason
        super().__init__(f"{self.path}: {rule}")


def clean(text: str, limit: int) -> str:
    """Printable ASCII without quotes or backslashes (RFC 6749 §5.2), at most ``limit``."""
    text = _UNSAFE.sub("?", text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe(error: msgspec.ValidationError, rules: Mapping[str, str], *, within: str = "",
             base: int = 0) -> PayloadViolation:
    """The violation msgspec found. ``within`` and ``base`` place an error found in a slice
    of the document: a slice of ``Users`` decoded as a list reports ``$[2]``, which is
    ``Users[base + 2]``."""
    # rpartition: the path comes last, and `what` may quote the input ("Invalid enum value").
    what, at, where = str(error).rpartition(" - at `$")
    if not at:
        what, where = where, ""
    path = where.rstrip("`")
    if within:
        first = _FIRST_INDEX.match(path)
        if first is not None:
            path = f"{within}[{base + int(first['index'])}]{path[first.end():]}"
        else:
            path = within + path
    path = path.lstrip(".")
    missing = _MISSING.fullmatch(what)
    if missing is not None:
        return PayloadViolation(f"{path}.{missing['name']}" if path else missing["name"],
                                "is required", "missing_field")
    last = _LAST_NAME.search(path)
    if not path:
        rule = "must be a JSON object"
    elif last is not None and last["index"]:
        rule = "must be an object"  # an element of Users or Segments
    elif last is not None and last["name"] in rules:
        rule = rules[last["name"]]
    else:
        rule = clean(what, 60)
    got = _GOT.search(what)
    if got is not None and got["type"] in _JSON_TYPES:
        rule += f" (got {_JSON_TYPES[got['type']]})"
    return PayloadViolation(path, rule, "invalid_value")


def check_utf8(body: bytes) -> None:
    # msgspec checks UTF-8 only in strings it decodes, not in fields it skips; the backend
    # must never receive bytes that are not text. isascii() is the fast path for IRIS.
    if body.isascii():
        return
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadViolation(ROOT, f"not valid UTF-8 (byte {exc.start})", "malformed") from None


async def check_utf8_sliced(body: bytes, size: int) -> None:
    """``check_utf8`` for a large body: decoded ``size`` bytes at a time, with the loop
    free to run between slices, and never a copy of the whole body as text."""
    if body.isascii():
        return
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    view = memoryview(body)
    for offset in range(0, len(body), size):
        pending = len(decoder.getstate()[0])  # bytes of a character cut by the last slice
        try:
            decoder.decode(view[offset:offset + size], offset + size >= len(body))
        except UnicodeDecodeError as exc:
            raise PayloadViolation(ROOT, f"not valid UTF-8 (byte {offset - pending + exc.start})",
                                   "malformed") from None
        await asyncio.sleep(0)


def decode_error(exc: Exception) -> PayloadViolation:
    """Describe a document that is not JSON; msgspec's own text names no input content."""
    if isinstance(exc, RecursionError):
        return PayloadViolation(ROOT, "JSON nested too deeply", "malformed")
    if isinstance(exc, UnicodeDecodeError):
        return PayloadViolation(ROOT, "not valid UTF-8", "malformed")
    text = str(exc)
    if text == "Input data was truncated":
        # Also msgspec's answer to a lone surrogate escape such as "\ud800".
        return PayloadViolation(ROOT, "malformed JSON (incomplete or empty)", "malformed")
    return PayloadViolation(ROOT, clean(text.replace("JSON is malformed", "malformed JSON"), 140),
                            "malformed")
