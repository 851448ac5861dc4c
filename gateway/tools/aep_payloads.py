"""Adobe Experience Platform batches, as a Destination SDK template renders them (docs/aep.md).

AEP sends a streaming destination whatever the partner's Pebble template makes of a group of
profiles; Adobe's template examples (the Destination SDK's "Message format" page) wrap them
in ``{"profiles": [...]}``. The generator renders the pass-through template: each profile's
``segmentMembership`` (audience id → ``status`` and ``lastQualificationTime`` under a
namespace, ``ups`` for Experience Platform's own audiences) and ``identityMap`` (namespace →
``[{"id": ...}]``), which ``docs/schemas/aep-profiles.json`` accepts. The load test
(``--profile aep``), the demo, the benchmarks and the tests import it:

``make_aep_batch(profiles: int, rng: random.Random, *, now: datetime | None = None)``
    One batch document with ``profiles`` profiles (at least 1).
``make_aep_batch_bytes(profiles, rng, *, now=None) -> bytes``
    The same as compact UTF-8 JSON, ready to be a request body.

What a generated profile holds, and why:

- 1 to 3 audience memberships under ``ups``, each a random UUID (Experience Platform's
  audience ids are UUIDs) with ``status`` ``realized`` (about 8 in 10), ``exited`` (about 1
  in 7) or ``existing`` (the rest; older pages list it beside the two others), and a
  ``lastQualificationTime`` in the shape of Adobe's examples (``2019-11-20T13:15:49Z``) up
  to a day before ``now``;
- an ``ecid`` identity (a 38-digit Experience Cloud ID) and, about half the time, an
  ``email_lc_sha256`` identity (64 hex digits), the two namespaces of Adobe's HTTP API
  export example.

All randomness comes from ``rng``: a seeded ``random.Random`` and a fixed ``now`` reproduce
the same bytes. A 10,000-profile batch, Adobe's largest configurable aggregation, is about
3 MB.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

__all__ = ["MAX_PROFILES_PER_BATCH", "make_aep_batch", "make_aep_batch_bytes"]

# Destination SDK's configurable aggregation: maxNumEventsInBatch is 1,000 to 10,000.
MAX_PROFILES_PER_BATCH = 10_000


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _status(rng: random.Random) -> str:
    roll = rng.random()
    return "realized" if roll < 0.8 else ("exited" if roll < 0.94 else "existing")


def _profile(rng: random.Random, now: datetime) -> dict[str, Any]:
    memberships = {
        str(uuid.UUID(int=rng.getrandbits(128), version=4)): {
            "lastQualificationTime": _iso(now - timedelta(seconds=rng.randrange(0, 86400))),
            "status": _status(rng),
        }
        for _ in range(rng.randint(1, 3))
    }
    identities: dict[str, list[dict[str, str]]] = {
        "ecid": [{"id": str(rng.randrange(10**37, 10**38))}]}
    if rng.random() < 0.5:
        identities["email_lc_sha256"] = [{"id": f"{rng.getrandbits(256):064x}"}]
    return {"segmentMembership": {"ups": memberships}, "identityMap": identities}


def make_aep_batch(profiles: int, rng: random.Random, *,
                   now: datetime | None = None) -> dict[str, Any]:
    """One AEP batch of ``profiles`` profiles; see the module docstring for its shape."""
    if profiles < 1:
        raise ValueError("profiles must be at least 1")
    moment = now if now is not None else datetime.now(UTC)
    return {"profiles": [_profile(rng, moment) for _ in range(profiles)]}


def make_aep_batch_bytes(profiles: int, rng: random.Random, *,
                         now: datetime | None = None) -> bytes:
    """``make_aep_batch`` encoded as compact UTF-8 JSON."""
    return msgspec.json.encode(make_aep_batch(profiles, rng, now=now))
