"""The shapes of the two Adobe payload profiles, declared once as msgspec types whose
constraints are checked in C while the body is parsed (docs/configuration.md ``payload``).

``aam-segments`` (the faithful default) requires only what every Adobe sample agrees on: an
object whose ``Users`` is a non-empty list of objects, each with a non-empty ``AAM_UUID``
string and a ``Segments`` list whose items carry ``Segment_ID`` and ``Status``. Every other
field of Adobe's table is optional and typed when present. ``aam-segments-strict`` also
requires ``ProcessTime``, ``User_DPID``, ``Client_ID``, ``User_count``, a destination id and
each segment's ``DateTime``, and bounds integers to 18 digits.

Each profile has two sets of types. The *whole* set decodes a body in one call (small
bodies). The *shell* set stops one level down: ``Users`` (and a large user's ``Segments``)
as ``msgspec.Raw``, views into the body, so a large body is checked a slice at a time
(``aam.py``). Fields that are only skipped are never built into Python objects:
unknown fields are skipped by the parser, and ``AAM_Regions`` is one ``Raw`` whose first
byte tells a list, so a 10 KB gzip body inflating to megabytes of ``[{},{},...]`` builds no
Python value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal

import msgspec
from msgspec import UNSET, Meta, Raw, Struct, UnsetType

__all__ = ["FAITHFUL", "STRICT", "Profile", "SignPush", "SignUser"]

# `re.search` semantics: `$` would also match before a trailing newline, so `\Z` ends
# every pattern ("123\n" is not a string of digits).
_DIGITS_MAX = 18
_Digits = Annotated[str, Meta(pattern=r"^[0-9]+\Z")]
_Natural = Annotated[int, Meta(ge=0)]
_IntLike = _Digits | _Natural
# Strict: 0 to 10**18 - 1, so every value fits a signed 64-bit integer in any backend.
_Digits18 = Annotated[str, Meta(pattern=rf"^[0-9]{{1,{_DIGITS_MAX}}}\Z")]
_SmallInt = Annotated[int, Meta(ge=0, le=10**_DIGITS_MAX - 1)]
_IntLike18 = _Digits18 | _SmallInt
_NonEmpty = Annotated[str, Meta(min_length=1)]
_Status = Literal["1", "0", 1, 0]


# gc=False: these objects live for one call and never form cycles; untracking them saves
# the collector passes a large batch would otherwise trigger. kw_only: required fields may
# follow optional ones in a base class.
class _Segment(Struct, gc=False, kw_only=True):
    Segment_ID: _NonEmpty | int
    Status: _Status
    # Checked after decoding (aam.check_dates): a msgspec pattern costs a Python
    # call per string (~0.4 us), more than the whole decode of a segment.
    DateTime: str | UnsetType = UNSET


class _StrictSegment(Struct, gc=False, kw_only=True):
    Segment_ID: _NonEmpty | int
    Status: _Status
    DateTime: str


class _UserFields(Struct, gc=False, kw_only=True):
    AAM_UUID: _NonEmpty
    DataPartner_UUID: str | None = None
    # Only "is it a list (or null)" is checked, on the first byte of one Raw view: the
    # elements are never built, however many (a list of Raw would cost an object each).
    AAM_Regions: Raw | UnsetType = UNSET


class _User(_UserFields, gc=False, kw_only=True):
    Segments: list[_Segment]


class _StrictUser(_UserFields, gc=False, kw_only=True):
    Segments: list[_StrictSegment]


class UserShell(_UserFields, gc=False, kw_only=True):
    Segments: list[Raw]


# UNSET, not None: absent is allowed, null is not (it is no date, integer or string).
class _PushFields(Struct, gc=False, kw_only=True):
    ProcessTime: str | UnsetType = UNSET
    User_DPID: _IntLike | UnsetType = UNSET
    Client_ID: str | int | UnsetType = UNSET
    User_count: _IntLike | UnsetType = UNSET
    AAM_Destination_Id: _IntLike | UnsetType = UNSET
    AAM_Destination_ID: _IntLike | UnsetType = UNSET


class _StrictPushFields(Struct, gc=False, kw_only=True):
    ProcessTime: str
    User_DPID: _IntLike18
    Client_ID: str | int
    User_count: _IntLike18
    # Either spelling is enough (the sample and Adobe's table differ); checked after.
    AAM_Destination_Id: _IntLike18 | UnsetType = UNSET
    AAM_Destination_ID: _IntLike18 | UnsetType = UNSET


_Users = Annotated[list[_User], Meta(min_length=1)]
_StrictUsers = Annotated[list[_StrictUser], Meta(min_length=1)]
_RawUsers = Annotated[list[Raw], Meta(min_length=1)]


class _Push(_PushFields, gc=False, kw_only=True):
    Users: _Users


class _PushShell(_PushFields, gc=False, kw_only=True):
    Users: _RawUsers


class _StrictPush(_StrictPushFields, gc=False, kw_only=True):
    Users: _StrictUsers


class _StrictPushShell(_StrictPushFields, gc=False, kw_only=True):
    Users: _RawUsers


# Where a JSON number -0 hides: msgspec reads it as 0, which the integer fields and Status
# would accept, so a body holding the bytes "-0" gets one more look, at the raw values.
class _SignSegment(Struct, gc=False):
    Status: Raw | UnsetType = UNSET


class SignUser(Struct, gc=False):
    Segments: list[_SignSegment] = []


class SignPush(Struct, gc=False):
    User_DPID: Raw | UnsetType = UNSET
    User_count: Raw | UnsetType = UNSET
    AAM_Destination_Id: Raw | UnsetType = UNSET
    AAM_Destination_ID: Raw | UnsetType = UNSET
    Users: list[SignUser] = []


_INTEGER = "must be an integer or a string of digits"
_INTEGER18 = f"must be an integer or a string of 1 to {_DIGITS_MAX} digits"
DATE: Final = "must be a date like Wed Jul 27 16:17:42 UTC 2016"
# What each field must be, for the error's description; keyed by the path's last name.
_RULES: Final[dict[str, str]] = {
    "ProcessTime": DATE,
    "DateTime": DATE,
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
_STRICT_RULES: Final[dict[str, str]] = {
    **_RULES, **{name: _INTEGER18 for name in (
        "User_DPID", "User_count", "AAM_Destination_Id", "AAM_Destination_ID")}}


@dataclass(frozen=True, slots=True)
class Profile:
    """One profile's decoders, built once: a Decoder compiles its type into a C plan."""

    name: str
    rules: dict[str, str]
    whole: msgspec.json.Decoder[Any]  # the body in one call
    shell: msgspec.json.Decoder[Any]  # the top level, Users as Raw
    users: msgspec.json.Decoder[Any]  # a slice of Users, as a list
    user_shell: msgspec.json.Decoder[UserShell]  # one large user, Segments as Raw
    segments: msgspec.json.Decoder[Any]  # a slice of one user's Segments, as a list
    destination_required: bool


FAITHFUL: Final = Profile(
    name="aam-segments", rules=_RULES,
    whole=msgspec.json.Decoder(_Push), shell=msgspec.json.Decoder(_PushShell),
    users=msgspec.json.Decoder(list[_User]), user_shell=msgspec.json.Decoder(UserShell),
    segments=msgspec.json.Decoder(list[_Segment]), destination_required=False)
STRICT: Final = Profile(
    name="aam-segments-strict", rules=_STRICT_RULES,
    whole=msgspec.json.Decoder(_StrictPush), shell=msgspec.json.Decoder(_StrictPushShell),
    users=msgspec.json.Decoder(list[_StrictUser]), user_shell=msgspec.json.Decoder(UserShell),
    segments=msgspec.json.Decoder(list[_StrictSegment]), destination_required=True)
SIGNS: Final = msgspec.json.Decoder(SignPush)
SIGN_USERS: Final = msgspec.json.Decoder(list[SignUser])
SIGN_SEGMENTS: Final = msgspec.json.Decoder(list[_SignSegment])
