"""Checking a body against an Adobe profile (``profiles.py``): in one call when it is
small, a slice at a time when it is large.

``check_whole(profile, body)`` decodes the body once into the profile's types and then runs
the checks msgspec cannot express: unique keys (``json_keys.py``), dates (``check_dates``),
the destination id's two spellings, the list-ness of ``AAM_Regions`` and a JSON ``-0`` where
a sign is refused.
"First problem" is the first msgspec meets in document order (a missing field is noticed
at the end of its object), then the first bad date, then the destination id.

``check_sliced(profile, body)`` gives the same verdict for a large body without holding it
decoded and without holding the event loop: msgspec is C that keeps the GIL, so a thread
would block the loop all the same. It checks UTF-8 a slice at a time, reads the top level
with ``Users`` as raw views, then decodes ``SLICE_BYTES`` of users at a time (one large
user's ``Segments`` likewise), yielding to the loop between slices. The one step left
whole is msgspec's scan of the top level, which builds one small ``Raw`` per user (about
1 ms per MiB, measured by ``bench/micro_payload.py --shapes``). Problems are found slice
by slice, so the first one named may differ from ``check_whole``'s; the verdict does not.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Sequence
from typing import Any, Final

import msgspec
from msgspec import UNSET, Raw

from gateway.stages.payload.errors import (
    PayloadViolation,
    check_utf8,
    check_utf8_sliced,
    decode_error,
    describe,
)
from gateway.stages.payload.json_keys import check_unique_keys, raw_slices, refuse_duplicates
from gateway.stages.payload.profiles import (
    DATE,
    SIGN_SEGMENTS,
    SIGN_USERS,
    SIGNS,
    Profile,
    SignUser,
)

__all__ = ["SLICE_BYTES", "check_dates", "check_sliced", "check_whole"]

SLICE_BYTES: Final = 64 * 1024

# Java's Date.toString() is "EEE MMM dd HH:mm:ss zzz yyyy" with English names. Lenient on
# purpose: a rejected push is data IRIS loses after one retry, so the zone may be any name
# or offset Java prints ("UTC", "CEST", "GMT+05:30"), and the day may be space-padded as the
# `date` command prints it ("Jul  7"). What a parser needs (the field order) is kept.
# No alternative in it may match a newline: check_dates relies on that.
_JAVA_DATE: Final = (
    r"[A-Za-z]{3} [A-Za-z]{3} [ 0-9]?[0-9] [0-9]{2}:[0-9]{2}:[0-9]{2} "
    r"[A-Za-z][A-Za-z0-9+:/_-]{0,31} [0-9]{4}"
)
_ONE_DATE: Final = re.compile(_JAVA_DATE)
_DATE_LINES: Final = re.compile(rf"(?:{_JAVA_DATE}\n)*")
_LIST, _NULL = ord("["), b"null"
_DECODE_ERRORS = (msgspec.DecodeError, RecursionError, UnicodeDecodeError)


def _decode(decoder: msgspec.json.Decoder[Any], data: bytes | Raw, rules: dict[str, str], *,
            within: str = "", base: int = 0) -> Any:
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise describe(exc, rules, within=within, base=base) from None
    except _DECODE_ERRORS as exc:
        raise decode_error(exc) from None


def check_dates(top: Any, users: Sequence[Any], base: int = 0) -> None:
    """Check every date against _JAVA_DATE with a few C calls instead of one per segment.

    A batch repeats the same few timestamps, so the distinct values are joined by newlines
    and matched at once; the count check stops a value holding a newline from passing as
    two dates. Only when that fails is each date tried, in document order, for the path.
    """
    dates = {seg.DateTime for user in users for seg in user.Segments}
    if top is not None:
        dates.add(top.ProcessTime)
    dates.discard(UNSET)  # an optional date left out
    if not dates:
        return
    text = "\n".join(dates) + "\n"
    if text.count("\n") == len(dates) and _DATE_LINES.fullmatch(text) is not None:
        return
    if top is not None and top.ProcessTime is not UNSET and not _ONE_DATE.fullmatch(
            top.ProcessTime):
        raise PayloadViolation("ProcessTime", DATE, "invalid_value")
    for u, user in enumerate(users):
        for s, seg in enumerate(user.Segments):
            if seg.DateTime is not UNSET and not _ONE_DATE.fullmatch(seg.DateTime):
                raise PayloadViolation(f"Users[{base + u}].Segments[{s}].DateTime", DATE,
                                       "invalid_value")
    raise AssertionError("a date failed as a group but not alone")


def _check_regions(users: Iterable[Any], base: int = 0) -> None:
    for u, user in enumerate(users):
        regions = user.AAM_Regions
        if regions is not UNSET:
            view = memoryview(regions)
            if view[0] != _LIST and view != _NULL:
                raise PayloadViolation(f"Users[{base + u}].AAM_Regions", "must be a list",
                                       "invalid_value")
            data = bytes(view)
            if b":" in data:  # kept raw: keys in it, if any, are checked here
                refuse_duplicates(data, within=f"Users[{base + u}].AAM_Regions")


def _has_minus_zero(data: bytes) -> bool:
    # A one-byte search is memchr (~100x faster than a two-byte one): most pushes hold no
    # "-" at all.
    return b"-" in data and b"-0" in data


def _check_destination(top: Any, profile: Profile) -> None:
    lower, upper = top.AAM_Destination_Id, top.AAM_Destination_ID
    if profile.destination_required and lower is UNSET and upper is UNSET:
        raise PayloadViolation("AAM_Destination_Id", "is required (or AAM_Destination_ID)",
                               "missing_field")
    # "423" and 423 are the same destination; both digit-checked, so int() cannot fail.
    if lower is not UNSET and upper is not UNSET and int(lower) != int(upper):
        raise PayloadViolation("AAM_Destination_ID", "differs from AAM_Destination_Id",
                               "invalid_value")


def _check_top_signs(body: bytes, profile: Profile) -> list[SignUser]:
    """Refuse a -0 at the top level; the users' raw values, for ``_check_user_signs``."""
    signs = SIGNS.decode(body)  # the body decoded already: this cannot fail
    for name in ("User_DPID", "User_count", "AAM_Destination_Id", "AAM_Destination_ID"):
        value = getattr(signs, name)
        if value is not UNSET and bytes(value) == b"-0":
            raise PayloadViolation(name, profile.rules[name], "invalid_value")
    return signs.Users


def _check_user_signs(users: list[SignUser], base: int) -> None:
    for u, user in enumerate(users):
        _check_segment_signs(user.Segments, f"Users[{base + u}].Segments", 0)


def _check_segment_signs(segments: Sequence[Any], within: str, base: int) -> None:
    for s, seg in enumerate(segments):
        if seg.Status is not UNSET and bytes(seg.Status) == b"-0":
            raise PayloadViolation(f"{within}[{base + s}].Status", "must be 1 or 0",
                                   "invalid_value")


def check_whole(profile: Profile, body: bytes) -> None:
    """Raise ``PayloadViolation`` unless ``body`` is a push of ``profile``; one decode."""
    check_utf8(body)
    push = _decode(profile.whole, body, profile.rules)
    check_unique_keys(body, push, profile.whole)
    _check_regions(push.Users)
    check_dates(push, push.Users)
    _check_destination(push, profile)
    if _has_minus_zero(body):  # IRIS sends no negative numbers
        _check_user_signs(_check_top_signs(body, profile), 0)


def _joined(raws: Sequence[Raw]) -> bytes:
    return b"[" + b",".join(raws) + b"]"


async def check_sliced(profile: Profile, body: bytes) -> None:
    """``check_whole``'s verdict, a slice at a time (see the module's docstring)."""
    await check_utf8_sliced(body, 4 * SLICE_BYTES)
    top = _decode(profile.shell, body, profile.rules)
    check_unique_keys(body, top, profile.shell, skip=("Users",))  # Users: by slice below
    _check_destination(top, profile)
    check_dates(top, ())
    if _has_minus_zero(body):
        _check_top_signs(body, profile)
    users: list[Raw] = top.Users
    for start, end in raw_slices(users, SLICE_BYTES):
        if end == start + 1 and len(users[start]) > SLICE_BYTES:
            await _check_large_user(profile, users[start], start)
        else:
            chunk = _joined(users[start:end])
            decoded = _decode(profile.users, chunk, profile.rules, within="Users", base=start)
            check_unique_keys(chunk, decoded, profile.users, within="Users", base=start)
            _check_regions(decoded, start)
            check_dates(None, decoded, start)
            if _has_minus_zero(chunk):
                _check_user_signs(SIGN_USERS.decode(chunk), start)
        await asyncio.sleep(0)


async def _check_large_user(profile: Profile, raw: Raw, index: int) -> None:
    where = f"Users[{index}]"
    user = _decode(profile.user_shell, raw, profile.rules, within=where)
    check_unique_keys(bytes(raw), user, profile.user_shell, within=where, skip=("Segments",))
    _check_regions((user,), index)
    segments: list[Raw] = user.Segments
    for start, end in raw_slices(segments, SLICE_BYTES):
        chunk = _joined(segments[start:end])
        decoded = _decode(profile.segments, chunk, profile.rules,
                          within=f"{where}.Segments", base=start)
        check_unique_keys(chunk, decoded, profile.segments, within=f"{where}.Segments",
                          base=start)
        for s, seg in enumerate(decoded):
            if seg.DateTime is not UNSET and not _ONE_DATE.fullmatch(seg.DateTime):
                raise PayloadViolation(f"{where}.Segments[{start + s}].DateTime", DATE,
                                       "invalid_value")
        if _has_minus_zero(chunk):
            _check_segment_signs(SIGN_SEGMENTS.decode(chunk), f"{where}.Segments", start)
        await asyncio.sleep(0)
