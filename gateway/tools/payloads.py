"""Realistic ``aam-segments`` payloads, as Adobe Audience Manager's IRIS sends them.

The load tester, the demo and the benchmarks import this module, so its interface is stable:

``make_payload(users: int, rng: random.Random, *, now: datetime | None = None) -> dict[str, Any]``
    One segment-push document (docs/adobe.md) with ``users`` users (at least 1).
``make_payload_bytes(users: int, rng: random.Random, *, now: datetime | None = None) -> bytes``
    The same document as compact UTF-8 JSON, ready to be a request body.
``java_date(moment: datetime) -> str``
    ``moment`` in Java's ``Date.toString()`` format in UTC: ``Wed Jul 27 16:17:42 UTC 2016``.
``IRIS_SHAPED_PUSH: bytes``
    A push with the shape of the sample on Adobe's IRIS page (docs/adobe.md): no
    ``User_DPID``, a ``User_count`` that disagrees with ``Users``, 4-space indentation;
    the values are made up. The faithful ``aam-segments`` profile accepts it, the strict one
    does not.

What a generated document looks like, and why:

- every number is a JSON string (``"User_DPID": "12345"``), as in Adobe's sample and as
  IRIS really sends them;
- the destination key is spelled ``AAM_Destination_Id``, as in Adobe's sample;
- ``User_count`` equals the number of users (IRIS's own sample disagrees, but a generator
  has no reason to);
- each user has a 38-digit ``AAM_UUID``, a 32-character hex ``DataPartner_UUID`` or a blank
  one (about 1 in 10), ``AAM_Regions`` holding one region id about half the time, and 1 to
  3 segments with numeric-string ``Segment_ID``s, ``Status`` ``"1"`` (about 9 in 10) or
  ``"0"``, and a ``DateTime`` up to ten minutes before ``ProcessTime``;
- ``ProcessTime`` is ``now`` (the current UTC time when not given).

All randomness comes from ``rng``, so with a fixed ``now`` the output is a pure function of
the arguments: a seeded ``random.Random`` reproduces the same bytes.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

__all__ = ["IRIS_SHAPED_PUSH", "java_date", "make_payload", "make_payload_bytes"]

IRIS_SHAPED_PUSH = b"""{
    "ProcessTime": "Tue Mar 04 09:30:05 UTC 2025",
    "Client_ID": "310577",
    "AAM_Destination_Id": "48213",
    "User_count": "3",
    "Users": [
        {
            "AAM_UUID": "51880347210963314271938566402175593301",
            "DataPartner_UUID": "CAESEKq1-Ztr8wPd2mJxb4LhY0c",
            "Segments": [
                {
                    "Segment_ID": "7710342",
                    "Status": "1",
                    "DateTime": "Tue Mar 04 09:29:41 UTC 2025"
                }
            ]
        },
        {
            "AAM_UUID": "09345521876610290034871562230916448120",
            "DataPartner_UUID": "CAESEHn3QpL0-vkbYt9Wd2aXe1s|VqGhKwAAAT8pLm3z",
            "Segments": [
                {
                    "Segment_ID": "7710342",
                    "Status": "0",
                    "DateTime": "Tue Mar 04 09:29:58 UTC 2025"
                }
            ]
        }
    ]
}
"""

# Java's Date.toString() always uses English names, whatever the locale; strftime's %a/%b
# follow the process locale, so the names are spelled out here.
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# A handful of fixed account-level values per document, drawn from plausible ranges.
_DPIDS = ("12345", "20914", "20915", "1003")
_REGIONS = ("3", "6", "7", "8", "9", "11")


def java_date(moment: datetime) -> str:
    """Format ``moment`` as Java's ``Date.toString()`` does in UTC."""
    utc = moment.astimezone(UTC) if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return (
        f"{_DAYS[utc.weekday()]} {_MONTHS[utc.month - 1]} {utc.day:02d} "
        f"{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d} UTC {utc.year:04d}"
    )


def _user(rng: random.Random, now: datetime) -> dict[str, Any]:
    # AAM_UUIDs are 38-digit decimal numbers; the first digit is never 0.
    aam_uuid = str(rng.randrange(10**37, 10**38))
    partner_uuid = "" if rng.random() < 0.1 else f"{rng.getrandbits(128):032x}"
    user: dict[str, Any] = {"AAM_UUID": aam_uuid, "DataPartner_UUID": partner_uuid}
    if rng.random() < 0.5:
        user["AAM_Regions"] = [rng.choice(_REGIONS)]
    user["Segments"] = [
        {
            "Segment_ID": str(rng.randrange(1000, 9_999_999)),
            "Status": "1" if rng.random() < 0.9 else "0",
            "DateTime": java_date(now - timedelta(seconds=rng.randrange(0, 600))),
        }
        for _ in range(rng.randint(1, 3))
    ]
    return user


def make_payload(users: int, rng: random.Random, *, now: datetime | None = None) -> dict[str, Any]:
    """One IRIS segment push with ``users`` users; see the module docstring for its shape."""
    if users < 1:
        raise ValueError("users must be at least 1")
    moment = now if now is not None else datetime.now(UTC)
    return {
        "ProcessTime": java_date(moment),
        "User_DPID": rng.choice(_DPIDS),
        "Client_ID": str(rng.randrange(10_000, 99_999)),
        "AAM_Destination_Id": str(rng.randrange(100, 99_999)),
        "User_count": str(users),
        "Users": [_user(rng, moment) for _ in range(users)],
    }


def make_payload_bytes(users: int, rng: random.Random, *, now: datetime | None = None) -> bytes:
    """``make_payload`` encoded as compact UTF-8 JSON, keys in the order IRIS writes them."""
    return msgspec.json.encode(make_payload(users, rng, now=now))
