"""The AEP batch generator (``gateway/tools/aep_payloads.py``): reproducible from its seed,
the shape Adobe's pass-through template renders, and a 10,000-profile batch of the size
docs/aep.md quotes."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import msgspec
import pytest

from gateway.tools.aep_payloads import MAX_PROFILES_PER_BATCH, make_aep_batch, make_aep_batch_bytes

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def test_the_same_seed_and_time_give_the_same_bytes() -> None:
    first = make_aep_batch_bytes(50, random.Random(3), now=NOW)
    assert first == make_aep_batch_bytes(50, random.Random(3), now=NOW)
    assert first != make_aep_batch_bytes(50, random.Random(4), now=NOW)


def test_each_profile_has_audiences_and_an_ecid() -> None:
    batch = make_aep_batch(400, random.Random(1), now=NOW)
    profiles = batch["profiles"]
    assert len(profiles) == 400
    statuses = set()
    for profile in profiles:
        memberships = profile["segmentMembership"]["ups"]
        assert 1 <= len(memberships) <= 3
        for membership in memberships.values():
            statuses.add(membership["status"])
            assert membership["lastQualificationTime"].endswith("Z")
        assert len(profile["identityMap"]["ecid"][0]["id"]) == 38
    assert statuses == {"realized", "exited", "existing"}


def test_a_full_batch_is_a_few_megabytes() -> None:
    body = make_aep_batch_bytes(MAX_PROFILES_PER_BATCH, random.Random(1), now=NOW)
    assert 3_000_000 < len(body) < 4_500_000
    assert len(msgspec.json.decode(body)["profiles"]) == MAX_PROFILES_PER_BATCH


def test_no_empty_batch() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        make_aep_batch(0, random.Random(1))
