"""The payload stage: checks that a request body is the JSON a route promises (docs/adobe.md).

``validate_aam_segments(body)`` accepts an Adobe Audience Manager (IRIS) segment push and
raises ``InvalidPayloadError`` naming the JSON path of the first problem, e.g.
``Users[0].Segments[1].Status: must be 1 or 0``. ``validate_json(body)`` is the check for
routes with ``payload: none``: any well-formed JSON document.

Nearly all the work happens in msgspec's C decoder: the document's shape is declared once
as ``msgspec.Struct`` types whose constraints (digit patterns, literals, lengths, bounds)
are checked while parsing; only the dates are matched afterwards, a few regex calls per
batch (see ``_check_dates``). A 10,000-user batch costs about 10 ms. The rules, from
docs/adobe.md:

- top level: an object with ``ProcessTime``, ``User_DPID``, ``Client_ID``,
  ``AAM_Destination_Id`` and/or ``AAM_Destination_ID`` (the sample and Adobe's table spell
  it differently; either is enough, both must then agree, null counts as a wrong value),
  ``User_count`` and ``Users``, a non-empty list. ``User_count`` is not compared with
  ``len(Users)``: the seed's own sample says ``"2"`` beside one user.
- integers (``User_DPID``, ``AAM_Destination_Id``, ``User_count``): a JSON integer or a
  string of ASCII digits, as IRIS sends them, 0 to 10**18 - 1 (at most 18 digits, so every
  value fits a signed 64-bit integer and no backend chokes on converting it). Booleans,
  floats, signs, blanks and other strings fail.
- ``Client_ID`` is a string in Adobe's table (an id from the partner's side): any string or
  integer. ``Segment_ID`` is "free text": a non-empty string or any integer.
- ``Status``: ``1`` or ``0``, as a string or a JSON number; nothing else is documented.
- each user: ``AAM_UUID`` a non-empty string; ``DataPartner_UUID`` a string, blank, null
  or absent; ``AAM_Regions`` a list (of anything), null or absent; ``Segments`` a list,
  possibly empty.
- dates (``ProcessTime``, ``DateTime``): Java's ``Date.toString()`` shape,
  ``Wed Jul 27 16:17:42 UTC 2016``, checked leniently (see ``_JAVA_DATE``): any time-zone
  name, a space-padded day as ``date`` prints it; not a calendar check.
- unknown fields pass anywhere. Duplicate keys are allowed; msgspec validates every
  occurrence, so whichever one a backend keeps is valid.
- the body must be UTF-8 (checked even inside fields msgspec only skips) and one JSON
  value with nothing after it. Depth is bounded by msgspec's recursion guard; size by
  ``server.max_body_bytes`` in the headers stage, which runs first.

"First problem" means the first one msgspec meets in document order, except that a missing
field is noticed at the end of its object, and the checks of dates (first bad one in
document order) and then of the destination id run after every structural check.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from gateway.errors import InvalidPayloadError

__all__ = ["validate_aam_segments", "validate_json"]

# `re.search` semantics: `$` would also match before a trailing newline, so `\Z` ends
# every pattern ("123\n" is not a string of digits).
_DIGITS_MAX = 18
_Digits = Annotated[str, Meta(pattern=rf"^[0-9]{{1,{_DIGITS_MAX}}}\Z")]
_SmallInt = Annotated[int, Meta(ge=0, le=10**_DIGITS_MAX - 1)]
_IntLike = _Digits | _SmallInt

# Java's Date.toString() is "EEE MMM dd HH:mm:ss zzz yyyy" with English names. Lenient on
# purpose: a rejected push is data IRIS loses after one retry, so the zone may be any name
# or offset Java prints ("UTC", "CEST", "GMT+05:30"), and the day may be space-padded as the
# `date` command prints it ("Jul  7"). What a parser needs (the field order) is kept.
# No alternative in it may match a newline: _check_dates relies on that.
_JAVA_DATE: Final = (
    r"[A-Za-z]{3} [A-Za-z]{3} [ 0-9]?[0-9] [0-9]{2}:[0-9]{2}:[0-9]{2} "
    r"[A-Za-z][A-Za-z0-9+:/_-]{0,31} [0-9]{4}"
)
_ONE_DATE: Final = re.compile(_JAVA_DATE)
_DATE_LINES: Final = re.compile(rf"(?:{_JAVA_DATE}\n)*")


# gc=False: these objects live for one call and never form cycles; untracking them saves
# the collector passes a 10,000-user batch would otherwise trigger.
class _Segment(Struct, gc=False):
    Segment_ID: Annotated[str, Meta(min_length=1)] | int
    Status: Literal["1", "0", 1, 0]
    # Checked after decoding, in _check_dates: a msgspec pattern costs a Python call per
    # string (~0.4 us), 8 ms for a 20,000-segment batch, more than the whole decode.
    DateTime: str


class _User(Struct, gc=False):
    AAM_UUID: Annotated[str, Meta(min_length=1)]
    Segments: list[_Segment]
    DataPartner_UUID: str | None = None
    AAM_Regions: list[Any] | None = None


class _Push(Struct, gc=False):
    ProcessTime: str
    User_DPID: _IntLike
    Client_ID: str | int
    User_count: _IntLike
    Users: Annotated[list[_User], Meta(min_length=1)]
    # UNSET, not None: absent is allowed (the other spelling may be there), null is not.
    AAM_Destination_Id: _IntLike | UnsetType = UNSET
    AAM_Destination_ID: _IntLike | UnsetType = UNSET


# Built once: a Decoder compiles its type into a C plan on construction.
_PUSH_DECODER: Final = msgspec.json.Decoder(_Push)
# Decoding to Raw parses and checks the whole document without building any object:
# validate_json costs ~1 ms per MB where a decode to Python values costs ~10.
_JSON_DECODER: Final = msgspec.json.Decoder(msgspec.Raw)

_INTEGER = f"must be an integer or a string of 1 to {_DIGITS_MAX} digits"
_DATE = "must be a date like Wed Jul 27 16:17:42 UTC 2016"
# What each field must be, for the error's description; keyed by the path's last name.
_RULES: Final[dict[str, str]] = {
    "ProcessTime": _DATE,
    "DateTime": _DATE,
    "User_DPID": _INTEGER,
    "User_count": _INTEGER,
    "AAM_Destination_Id": _INTEGER,
    "AAM_Destination_ID": _INTEGER,
    "Client_ID": "must be a string or an integer",
    "Users": "must be a non-empty list",
    "AAM_UUID": "must be a non-empty string",
    "DataPartner_UUID": "must be a string",
    "AAM_Regions": "must be a list",
    "Segments": "must be a list",
    "Segment_ID": "must be a non-empty string or an integer",
    "Status": "must be 1 or 0",
}
_JSON_TYPES: Final[dict[str, str]] = {
    "str": "string", "int": "integer", "float": "number", "bool": "boolean",
    "null": "null", "array": "array", "object": "object",
}  # fmt: skip
_MISSING = re.compile(r"Object missing required field `(?P<name>[^`]*)`")
_GOT = re.compile(r"got `(?P<type>[a-z]+)`")
_LAST_NAME = re.compile(r"(?:^|\.)(?P<name>[^.\[]*)(?P<index>\[\d+\])?$")
_UNSAFE = re.compile(r"[^\x20-\x21\x23-\x5b\x5d-\x7e]")
_MAX_PATH = 120
_ROOT = "payload"


def _clean(text: str, limit: int) -> str:
    """Printable ASCII without quotes or backslashes (RFC 6749 §5.2), at most ``limit``."""
    text = _UNSAFE.sub("?", text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(error: msgspec.ValidationError) -> str:
    """Turn msgspec's ``... - at `$.Users[0].Status``` into ``Users[0].Status: rule``."""
    # rpartition: the path comes last, and `what` may quote the input ("Invalid enum value").
    what, at, where = str(error).rpartition(" - at `$")
    if not at:
        what, where = where, ""
    path = where.rstrip("`").lstrip(".")
    missing = _MISSING.fullmatch(what)
    if missing is not None:
        path = f"{path}.{missing['name']}" if path else missing["name"]
        return f"{_clean(path, _MAX_PATH)}: is required"
    last = _LAST_NAME.search(path)
    if not path:
        rule = "must be a JSON object"
    elif last is not None and last["index"]:
        rule = "must be an object"  # an element of Users or Segments
    elif last is not None and last["name"] in _RULES:
        rule = _RULES[last["name"]]
    else:
        rule = _clean(what, 60)
    got = _GOT.search(what)
    if got is not None and got["type"] in _JSON_TYPES:
        rule += f" (got {_JSON_TYPES[got['type']]})"
    return f"{_clean(path or _ROOT, _MAX_PATH)}: {rule}"


def _check_utf8(body: bytes) -> None:
    # msgspec checks UTF-8 only in strings it decodes, not in fields it skips; the backend
    # must never receive bytes that are not text. isascii() is the fast path for IRIS.
    if body.isascii():
        return
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidPayloadError(f"{_ROOT}: not valid UTF-8 (byte {exc.start})") from None


def _decode_error(exc: Exception) -> InvalidPayloadError:
    """Describe a document that is not JSON; msgspec's own text names no input content."""
    if isinstance(exc, RecursionError):
        return InvalidPayloadError(f"{_ROOT}: JSON nested too deeply")
    if isinstance(exc, UnicodeDecodeError):
        return InvalidPayloadError(f"{_ROOT}: not valid UTF-8")
    text = str(exc)
    if text == "Input data was truncated":
        # Also msgspec's answer to a lone surrogate escape such as "\ud800".
        return InvalidPayloadError(f"{_ROOT}: malformed JSON (incomplete or empty)")
    return InvalidPayloadError(
        _clean(f"{_ROOT}: {text.replace('JSON is malformed', 'malformed JSON')}", 150)
    )


def _check_dates(push: _Push) -> None:
    """Check every date against _JAVA_DATE with a few C calls instead of one per segment.

    A batch repeats the same few timestamps, so the distinct values are joined by newlines
    and matched at once; the count check stops a value holding a newline from passing as
    two dates. Only when that fails is each date tried, in document order, for the path.
    """
    dates = {seg.DateTime for user in push.Users for seg in user.Segments}
    dates.add(push.ProcessTime)
    text = "\n".join(dates) + "\n"
    if text.count("\n") == len(dates) and _DATE_LINES.fullmatch(text) is not None:
        return
    if not _ONE_DATE.fullmatch(push.ProcessTime):
        raise InvalidPayloadError(f"ProcessTime: {_DATE}")
    for u, user in enumerate(push.Users):
        for s, seg in enumerate(user.Segments):
            if not _ONE_DATE.fullmatch(seg.DateTime):
                raise InvalidPayloadError(f"Users[{u}].Segments[{s}].DateTime: {_DATE}")
    raise AssertionError("a date failed as a group but not alone")


def validate_aam_segments(body: bytes) -> None:
    """Raise ``InvalidPayloadError`` unless ``body`` is a valid aam-segments push."""
    _check_utf8(body)
    try:
        push = _PUSH_DECODER.decode(body)
    except msgspec.ValidationError as exc:
        raise InvalidPayloadError(_describe(exc)) from None
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError) as exc:
        raise _decode_error(exc) from None
    _check_dates(push)
    lower, upper = push.AAM_Destination_Id, push.AAM_Destination_ID
    if lower is UNSET and upper is UNSET:
        raise InvalidPayloadError("AAM_Destination_Id: is required (or AAM_Destination_ID)")
    # "423" and 423 are the same destination; both digit-checked, so int() cannot fail.
    if lower is not UNSET and upper is not UNSET and int(lower) != int(upper):
        raise InvalidPayloadError("AAM_Destination_ID: differs from AAM_Destination_Id")


def validate_json(body: bytes) -> None:
    """Raise ``InvalidPayloadError`` unless ``body`` is one well-formed JSON document."""
    _check_utf8(body)
    try:
        _JSON_DECODER.decode(body)
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError) as exc:
        raise _decode_error(exc) from None
