"""spool/redis/health.py and fallback.push_key without a server: when the accept path
sends pushes straight to the local file, what it logs while that lasts, and the push key
read back from a stored header block (what the move from the local file dedupes on)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from gateway.config import SpoolSettings
from gateway.spool.redis import health as health_module
from gateway.spool.redis.fallback import push_key
from gateway.spool.redis.streams import StreamStore


def _store(min_replicas: int = 0) -> StreamStore:
    return StreamStore(SpoolSettings(backend="redis", url="redis://127.0.0.1:9/0",
                                     path=Path("unused.db"), min_replicas=min_replicas))


async def test_a_redis_nobody_asked_yet_is_tried_then_believed_down() -> None:
    store = _store()
    health = store.health
    assert health.takes_pushes()  # not asked yet: try it
    await health.check()  # nothing listens on port 9
    assert health.reachable is False and not health.takes_pushes()
    assert "127.0.0.1:9" in (health.short() or "")
    await store.close()


async def test_replicas_short_of_min_replicas_send_pushes_to_the_file() -> None:
    store = _store(min_replicas=1)
    health = store.health
    health.reachable, health.replicas = True, 0
    health.checked_at = health_module.time.monotonic()
    assert "fewer than min_replicas=1" in (health.short() or "")
    health.replicas = 1
    assert health.takes_pushes()
    health.checked_at -= health_module.STALE_SECONDS + 1  # the round stopped answering
    assert not health.takes_pushes()
    await store.close()


async def test_a_lasting_outage_is_logged_at_once_then_every_repeat(
        caplog: pytest.LogCaptureFixture) -> None:
    store = _store()
    caplog.set_level(logging.INFO, logger="gateway.spool.redis")
    for _ in range(3):  # three rounds within REPEAT_SECONDS: one line
        await store.health.check()
    store.health._said_at -= health_module.REPEAT_SECONDS  # as if that long had passed
    await store.health.check()
    reasons = [r.reason_id for r in caplog.records if hasattr(r, "reason_id")]
    assert reasons.count("spool_redis_down") == 2
    store.health.reachable, store.health.error = True, None
    store.health._say()
    assert [r for r in caplog.records if getattr(r, "reason_id", "") == "spool_redis_back"]
    await store.close()


def test_the_push_key_is_read_back_from_the_header_block() -> None:
    fields = b'X-Request-Id: r-1\r\nIdempotency-Key: "8e03978e-40d5"\r\n'
    assert push_key(fields, b"{}") == "8e03978e-40d5"
    first = b'Idempotency-Key: "k-2"\r\nX-Request-Id: r\r\n'
    assert push_key(first, b"{}") == "k-2"
    # Stored before keys existed: a digest, the same on every try.
    old = b"X-Request-Id: r-1\r\n"
    assert push_key(old, b"{}") == push_key(old, b"{}") != push_key(old, b"{ }")
    assert push_key(b'X-Note: Idempotency-Key: "no"\r\n', b"").startswith("sha256-")
