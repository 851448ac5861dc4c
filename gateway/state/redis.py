"""Redis as the state several gateway machines share (docs/configuration.md ``state``,
docs/deploy.md).

``RedisState`` implements ``base.BroadcastingState`` with redis-py's asyncio client and its
connection pool. Every key lives under ``state.key_prefix`` (``gateway:`` by default):

``revoked``          sorted set: member a revoked ``jti``, score the epoch second its token
                     expires; pruned by score, and the key itself expires with the last one
``fail:<address>``   INCR + PEXPIRE: one address's failed authentications in its window
``blocked``          sorted set: member an address, score the end of its block
``bucket:<client>``  hash ``tokens``/``ts``: a client's token bucket, shared by the fleet

Each write is one Lua script (atomic, one round trip) that also PUBLISHes on
``<prefix>events`` (``r <until> <jti>``, ``b <until> <address>``), so every instance learns
of it at once; ``SharedState`` reads the whole sets every few seconds in case a message was
missed. Windows and blocks are timed by Redis's clock (``TIME``), so machines whose clocks
drift still agree. Redis Cluster is not supported (the scripts touch two keys): use one
primary, with a replica and Sentinel for failover.

While Redis is unreachable the calls made for a request (``count_failure``, ``revoke``)
fail at once instead of waiting for a timeout each: the background resync (``prune``,
``revoked_since``, ``blocked``) probes the connection and clears the breaker. Error texts
name the exception and the host, never the URL or the password: the client, its TLS and
the breaker are ``redis_connection.py``'s, and so is the Sentinel client (``state.sentinel``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from redis.exceptions import RedisError

from gateway.config import StateSettings
from gateway.state.base import StateError, StateEvent
from gateway.state.redis_connection import RedisConnection

__all__ = ["RedisState"]

T = TypeVar("T")

_TIMEOUT_SECONDS = 1.0  # a request that counts a failure never waits longer on Redis
_BREAKER_SECONDS = 1.0  # after a failure, request-path calls fail fast this long
_POOL_SIZE = 32
_LISTEN_POLL_SECONDS = 1.0

_REVOKE = """
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('EXPIREAT', KEYS[1], math.ceil(tonumber(last[2])) + 1)
redis.call('PUBLISH', ARGV[3], 'r ' .. ARGV[2] .. ' ' .. ARGV[1])
return 1
"""
# A fixed window from the first failure, like the SQLite backend; the block ends with it.
_COUNT_FAILURE = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
if count < tonumber(ARGV[2]) then return '' end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then ttl = tonumber(ARGV[1]); redis.call('PEXPIRE', KEYS[1], ttl) end
local now = redis.call('TIME')
local ends = tonumber(now[1]) + tonumber(now[2]) / 1e6 + ttl / 1000
redis.call('ZADD', KEYS[2], ends, ARGV[3])
redis.call('PUBLISH', ARGV[4], 'b ' .. string.format('%.3f', ends) .. ' ' .. ARGV[3])
return string.format('%.3f', ends)
"""
# A token bucket that instances spend from in batches (``SharedState`` syncs every ~0.1 s);
# the debt is bounded to one burst so a fleet that overspent recovers in burst/rate seconds.
_SPEND = """
local rate, burst, spent = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local now = redis.call('TIME')
now = tonumber(now[1]) + tonumber(now[2]) / 1e6
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate) - spent
if tokens < -burst then tokens = -burst end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'ts',
           string.format('%.6f', now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return string.format('%.6f', tokens)
"""


class RedisState:
    """``BroadcastingState`` on one Redis primary, shared by every instance and worker."""

    def __init__(self, settings: StateSettings) -> None:
        self._prefix = settings.key_prefix
        self._channel = f"{settings.key_prefix}events"
        self._redis = RedisConnection(
            settings, name="aam-oauth-gateway", error=StateError, decode_responses=True,
            socket_timeout=_TIMEOUT_SECONDS, max_connections=_POOL_SIZE,
            connect_timeout=_TIMEOUT_SECONDS, breaker_seconds=_BREAKER_SECONDS)
        self._client = self._redis.client
        self._revoke = self._client.register_script(_REVOKE)
        self._count = self._client.register_script(_COUNT_FAILURE)
        self._spend = self._client.register_script(_SPEND)

    async def _call(self, work: Callable[[], Awaitable[T]], *, probe: bool = False) -> T:
        # Request-path calls fail fast while the breaker is open; the resync probes.
        return await self._redis.call(work, fail_fast=not probe)

    async def revoke(self, jti: str, expires_at: float) -> None:
        await self._call(lambda: self._revoke(keys=[self._prefix + "revoked"],
                                              args=[jti, repr(expires_at), self._channel]))

    async def _unexpired(self, name: str) -> list[tuple[str, float]]:
        """Members of the sorted set ``name`` whose score (an epoch second) is ahead."""
        rows = await self._call(lambda: self._client.zrangebyscore(
            self._prefix + name, f"({time.time()!r}", "+inf", withscores=True), probe=True)
        return [(str(member), float(score)) for member, score in cast(list[Any], rows)]

    async def revoked_since(self, cursor: int) -> tuple[list[tuple[str, float]], int]:
        # No sequence to follow: every call returns every unexpired revocation (the
        # cursor stays 0); events carry what happens between two calls. Through Sentinel,
        # the primary is asked for first: a promotion is followed (and logged) here.
        await self._redis.primary()
        return await self._unexpired("revoked"), 0

    async def count_failure(self, address: str, window: float, limit: int) -> float | None:
        ends = await self._call(lambda: self._count(
            keys=[f"{self._prefix}fail:{address}", self._prefix + "blocked"],
            args=[int(window * 1000), limit, address, self._channel]))
        return float(ends) if ends else None

    async def blocked(self) -> dict[str, float]:
        return dict(await self._unexpired("blocked"))

    async def prune(self) -> None:
        now = repr(time.time())

        async def work() -> None:
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.zremrangebyscore(self._prefix + "revoked", "-inf", now)
                pipe.zremrangebyscore(self._prefix + "blocked", "-inf", now)
                await pipe.execute()

        await self._call(work, probe=True)

    async def spend(self, key: str, rate: float, burst: int, spent: int) -> float:
        left = await self._call(lambda: self._spend(
            keys=[f"{self._prefix}bucket:{key}"], args=[repr(float(rate)), burst, spent]))
        return float(left)

    async def listen(self, on_event: Callable[[StateEvent], None],
                     on_subscribed: Callable[[], None]) -> None:
        pubsub = self._client.pubsub()
        try:
            await pubsub.subscribe(self._channel)
            # Wait for Redis's confirmation: from then on nothing published is missed.
            while (await pubsub.get_message(timeout=_LISTEN_POLL_SECONDS) or {}).get(
                    "type") != "subscribe":
                pass
            on_subscribed()
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True,
                                                   timeout=_LISTEN_POLL_SECONDS)
                if message is not None and message.get("type") == "message":
                    event = _parse(str(message["data"]))
                    if event is not None:
                        on_event(event)
        except (RedisError, OSError) as exc:
            raise self._redis.error(exc) from None
        finally:
            # After an outage the connection is gone already; nothing left to release.
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()

    async def close(self) -> None:
        await self._redis.close()


def _parse(data: str) -> StateEvent | None:
    """``r <until> <jti>`` or ``b <until> <address>``; anything else is ignored (a newer
    gateway may publish more kinds)."""
    kind, _, rest = data.partition(" ")
    until, _, key = rest.partition(" ")
    try:
        ends = float(until)
    except ValueError:
        return None
    if not key:
        return None
    if kind == "r":
        return StateEvent("revoked", key, ends)
    if kind == "b":
        return StateEvent("blocked", key, ends)
    return None
