"""``RedisState`` against a real ``redis-server`` (docs/configuration.md ``state``, §5.7): two
clients stand
for two gateway instances. Revocations are pushed to the other and expire with their
token; failed authentications add up; the token buckets share one budget; the password
comes from ``${VAR}`` and never shows in an error; ``rediss://`` verifies the server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis

from gateway.config import StateSettings
from gateway.state.base import StateError, StateEvent
from gateway.state.ratelimit import BucketLedger, TokenBucket, shared_buckets
from gateway.state.redis import RedisState

from polling import until
from redis_harness import RedisServer, needs_redis

pytestmark = [needs_redis, pytest.mark.slow]


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    started = RedisServer(tmp_path / "redis")
    yield started
    started.stop()


@pytest.fixture
async def pair(server: RedisServer) -> AsyncIterator[tuple[RedisState, RedisState]]:
    settings = StateSettings(backend="redis", url=server.url)
    a, b = RedisState(settings), RedisState(settings)
    yield a, b
    await a.close()
    await b.close()


async def _listening(state: RedisState) -> tuple[list[StateEvent], asyncio.Task[None]]:
    events: list[StateEvent] = []
    subscribed = asyncio.Event()
    task = asyncio.create_task(state.listen(events.append, subscribed.set))
    await asyncio.wait_for(subscribed.wait(), 5)
    return events, task


async def test_revocations_reach_the_other_instance_and_expire_with_the_token(
        server: RedisServer, pair: tuple[RedisState, RedisState]) -> None:
    a, b = pair
    events, listener = await _listening(b)
    try:
        expires = time.time() + 60
        await a.revoke("jti-1", expires)
        await a.revoke("jti-old", time.time() - 1)  # its token has expired already
        await until(lambda: _some(events), 1.0, "the revocation event")
        assert events[0] == StateEvent("revoked", "jti-1", pytest.approx(expires))
        revoked, cursor = await b.revoked_since(0)
        assert [jti for jti, _ in revoked] == ["jti-1"] and cursor == 0
        raw = redis.Redis(port=server.port, decode_responses=True)
        try:
            await b.prune()
            assert await raw.zrange("gateway:revoked", 0, -1) == ["jti-1"]
            # The set itself expires with its last token: nothing is left behind.
            assert 0 < await raw.ttl("gateway:revoked") <= 62
        finally:
            await raw.aclose()
    finally:
        listener.cancel()


async def _some(items: list[Any]) -> bool:
    return bool(items)


async def test_failed_authentications_add_up_across_instances(
        pair: tuple[RedisState, RedisState]) -> None:
    a, b = pair
    events, listener = await _listening(a)
    try:
        assert await a.count_failure("192.0.2.7", 60, 4) is None
        assert await a.count_failure("192.0.2.7", 60, 4) is None
        assert await b.count_failure("192.0.2.7", 60, 4) is None
        blocked_until = await b.count_failure("192.0.2.7", 60, 4)  # the fourth, on the other one
        assert blocked_until is not None and 58 < blocked_until - time.time() <= 60.5
        assert (await a.blocked()) == {"192.0.2.7": pytest.approx(blocked_until, abs=0.01)}
        await until(lambda: _some(events), 1.0, "the block event")
        assert events[0].kind == "blocked" and events[0].key == "192.0.2.7"
        assert await a.count_failure("192.0.2.8", 60, 4) is None  # others unaffected
    finally:
        listener.cancel()


async def test_token_buckets_share_one_budget(server: RedisServer,
                                              pair: tuple[RedisState, RedisState]) -> None:
    a, b = pair
    ledger_a, ledger_b = BucketLedger(), BucketLedger()
    with shared_buckets(ledger_a):
        bucket_a = TokenBucket(0.01, 4)  # refills one token in 100 s: none during the test
    with shared_buckets(ledger_b):
        bucket_b = TokenBucket(0.01, 4)
    assert [bucket_a.take("aam") for _ in range(4)] == [None] * 4
    assert bucket_a.take("aam") is not None
    await ledger_a.sync(a.spend)
    # B has not served this client yet: it starts full, until its first sync.
    assert bucket_b.take("aam") is None
    await ledger_b.sync(b.spend)
    assert bucket_b.take("aam") is not None, "B spent a budget A had used up"
    # Redis gone: each bucket goes on alone (fail open), and says why the sync failed.
    server.stop()
    with pytest.raises(StateError):
        await ledger_b.sync(b.spend)
    assert bucket_a.take("other-client") is None


async def test_password_from_the_environment_never_shows(tmp_path: Path) -> None:
    password = "s3cret-for-tests-" + str(time.time_ns())
    server = RedisServer(tmp_path / "redis", "--requirepass", password)
    try:
        def config(value: str) -> StateSettings:
            return StateSettings(backend="redis", url=server.url, password=value)

        state = RedisState(config(password))
        await state.revoke("jti-1", time.time() + 60)
        assert [j for j, _ in (await state.revoked_since(0))[0]] == ["jti-1"]
        await state.close()
        assert password not in repr(config(password))
        wrong = RedisState(config(password + "-wrong"))
        with pytest.raises(StateError) as caught:
            await wrong.revoke("jti-2", time.time() + 60)
        assert password not in str(caught.value)
        await wrong.close()
        in_url = RedisState(StateSettings(
            backend="redis", url=f"redis://:{password}x@127.0.0.1:{server.port}/0"))
        with pytest.raises(StateError) as caught:
            await in_url.revoke("jti-3", time.time() + 60)
        assert password not in str(caught.value)
        await in_url.close()
    finally:
        server.stop()


async def test_rediss_verifies_the_server(tmp_path: Path, cert_dir: Path) -> None:
    server = RedisServer(tmp_path / "redis", tls=(cert_dir / "server.crt",
                                                  cert_dir / "server.key", cert_dir / "ca.crt"))
    try:
        url = f"rediss://localhost:{server.port}/0"
        trusted = RedisState(StateSettings(backend="redis", url=url,
                                           ca_file=cert_dir / "ca.crt"))
        await trusted.revoke("jti-1", time.time() + 60)
        assert (await trusted.blocked()) == {}
        await trusted.close()
        # Without the CA (the system's trust store) the server's certificate is refused.
        untrusted = RedisState(StateSettings(backend="redis", url=url))
        with pytest.raises(StateError):
            await untrusted.revoke("jti-2", time.time() + 60)
        await untrusted.close()
    finally:
        server.stop()
