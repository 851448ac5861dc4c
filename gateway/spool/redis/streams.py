"""``spool.backend: redis``: the spool in Redis Streams, shared by every instance (docs/deploy.md).

``StreamStore`` implements ``base.SpoolStore`` with the scripts of ``scripts.py``, one round
trip each. A push's key ``K`` (its ``Idempotency-Key``) leaves a ``done:K`` marker, so a
retry, a late write or the local file's move adds nothing. With ``min_replicas`` above 0,
``STAGE`` keeps a push out of every queue until ``WAIT`` confirms it, then ``COMMIT`` queues
it and is ``WAIT``ed for too; short of replicas at either step, ``NotReplicated`` (the
caller keeps a local copy). The client is ``redis_connection.py``'s.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import redis.asyncio as redis
from redis.exceptions import ResponseError

from gateway.config import SpoolSettings
from gateway.spool.base import Entry, SpoolError, SpoolView
from gateway.spool.redis import admin as stream_admin
from gateway.spool.redis.health import Health
from gateway.spool.redis.scripts import GROUP, SCRIPTS
from gateway.state.redis_connection import RedisConnection, describe

__all__ = ["GROUP", "Claim", "NotReplicated", "StreamItem", "StreamStore", "where"]

T = TypeVar("T")
WAIT_MILLISECONDS = 400  # per phase: both inside the accept's 2 s, with room for the file
STAGED_MILLISECONDS = 30_000  # an uncommitted push is gone after this
DEDUPE_SECONDS = 86_400  # a committed key is remembered this long (max_age_seconds's default)
_TIMEOUT_SECONDS = 1.0
_BREAKER_SECONDS = 1.0  # after a failure, pushes go straight to the local spool this long
_IDLE_CONSUMER_MS = 3_600_000


def where(settings: SpoolSettings) -> str:
    """The streams, for people: the Redis host (or Sentinel service) and the key prefix
    (never the URL)."""
    if settings.sentinel is not None:
        return f"redis sentinel {settings.sentinel.master_name} {settings.key_prefix}spool:*"
    return f"{describe(settings.url)} {settings.key_prefix}spool:*"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class NotReplicated(SpoolError):
    """Redis took the push but fewer than ``min_replicas`` replicas confirmed it."""

    reason_id = "spool_unreplicated"
    answer = "The spool could not replicate the request; retry later."


@dataclass(frozen=True, slots=True)
class StreamItem:
    """A claimed entry, ready to send again; ``source`` is the stream it is pending in."""

    id: int
    entry: bytes
    source: str
    route: str
    method: str
    query: str
    fields: bytes
    body: bytes
    size: int
    tries: int  # failed tries so far, refused connections included: the backoff's exponent


@dataclass(frozen=True, slots=True)
class Claim:
    items: list[StreamItem]
    expired: int  # dead-lettered for max_age_seconds by this call


class StreamStore:
    """The streams of one ``spool.key_prefix`` on one Redis primary."""

    def __init__(self, settings: SpoolSettings) -> None:
        self.settings = settings
        self.prefix = f"{settings.key_prefix}spool:"
        self.redis = RedisConnection(
            settings, name="aam-oauth-gateway-spool", error=SpoolError, decode_responses=False,
            socket_timeout=_TIMEOUT_SECONDS + WAIT_MILLISECONDS / 1000,
            max_connections=64, connect_timeout=_TIMEOUT_SECONDS,
            breaker_seconds=_BREAKER_SECONDS)
        self.client: redis.Redis = self.redis.client
        self.scripts = {name: self.client.register_script(text)
                        for name, text in SCRIPTS.items()}
        self.health = Health(self)  # started by the deliverer and by /readyz's reader

    # -- keys and errors ----------------------------------------------------------------

    @property
    def where(self) -> str:
        return self.redis.where

    def key(self, kind: str, route: str | None = None) -> str:
        return self.prefix + kind + ("" if route is None else ":" + route)

    def error(self, exc: BaseException) -> SpoolError:
        return SpoolError(str(self.redis.error(exc)))

    async def call(self, work: Callable[[], Awaitable[T]]) -> T:
        return await self.redis.call(work)

    def usable(self) -> bool:
        """False for a moment after a failure: pushes do not wait on a dead server."""
        return self.redis.usable()

    def trip(self) -> None:
        self.redis.trip()

    async def run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        return await self.call(lambda: self.scripts[name](keys=keys, args=args))

    # -- accepting ----------------------------------------------------------------------

    async def add(self, route: str, method: str, query: str, fields: bytes, body: bytes,
                  *, key: str, accepted_at: float | None = None) -> int | None:
        """Store push ``key`` once (``accepted_at``: one moved from the local spool, never
        refused for the bounds: it was answered 200 already); its id, or None when the
        bounds leave no room. Raises NotReplicated when replicas fell short (nothing
        queued, or queued but unconfirmed: see the module's docstring)."""
        limits = self.settings
        bounded = accepted_at is None
        most = limits.max_items if bounded else -1
        accepted = "" if bounded else repr(accepted_at)
        queue = [self.key("q", route), self.key("totals"), self.key("routes"), self.key("seq"),
                 self.key("done", key)]
        if limits.min_replicas == 0:
            found = await self.run("ADD", queue, [route, method, query, fields, body, most,
                                                  limits.max_bytes, GROUP, accepted,
                                                  DEDUPE_SECONDS])
            return int(found) or None
        staged = self.key("staged", key)
        had, replicas = await self.call(lambda: self._waited(
            "STAGE", [staged, self.key("done", key)],
            [method, query, fields, body, accepted, STAGED_MILLISECONDS]))
        if had:
            return had  # committed before: by the write this one retries, or the mover
        self._replicated(replicas, "stored")
        item, replicas = await self.call(lambda: self._waited(
            "COMMIT", [*queue, staged], [route, most, limits.max_bytes, GROUP,
                                         DEDUPE_SECONDS]))
        if item < 0:
            raise SpoolError(f"{self.where}: the staged push was gone at its commit")
        if item:
            self._replicated(replicas, "committed")
        return item or None

    async def _waited(self, script: str, keys: list[str], args: list[Any]) -> tuple[int, int]:
        """``script``, then ``WAIT min_replicas``: one pipeline is one connection, so WAIT
        counts the replicas holding this script's writes."""
        async with self.client.pipeline(transaction=False) as pipe:
            await self.scripts[script](keys=keys, args=args, client=pipe)  # queued
            pipe.execute_command("WAIT", self.settings.min_replicas, WAIT_MILLISECONDS)
            result, replicas = await pipe.execute()
        return int(result), int(replicas)

    def _replicated(self, replicas: int, what: str) -> None:
        wanted = self.settings.min_replicas
        if replicas < wanted:
            self.health.replicas = replicas  # believed until the next round
            raise NotReplicated(f"{self.where}: {replicas} of {wanted} replica(s) confirmed "
                                f"the push {what}")

    # -- delivering ---------------------------------------------------------------------

    async def claim(self, routes: Sequence[tuple[str, bool, float]], owner: str,
                    batch: int) -> dict[str, Claim]:
        """For each (route, deliver, lease seconds): its next batch, leased to ``owner``,
        all in one round trip; ``deliver`` False only expires (a route gone from the
        configuration)."""
        if not routes:
            return {}
        max_age = repr(self.settings.max_age_seconds)

        async def work() -> list[Any]:
            async with self.client.pipeline(transaction=False) as pipe:
                for route, deliver, lease in routes:
                    await self.scripts["CLAIM"](  # queued in the pipeline
                        keys=[self.key(k, route) for k in ("lease", "again", "q", "meta",
                                                           "dead")],
                        args=[owner, int(lease * 1000), GROUP, batch, max_age,
                              "1" if deliver else "0"], client=pipe)
                return list(await pipe.execute())

        return {route: self._claimed(route, answer)
                for (route, _, _), answer in zip(routes, await self.call(work), strict=True)}

    def _claimed(self, route: str, answer: list[Any]) -> Claim:
        expired, source = int(answer[0]), int(answer[1])
        if not source:
            return Claim([], expired)
        stream = self.key("again" if source == 1 else "q", route)
        items = []
        for (entry, flat), meta in zip(answer[2], answer[3], strict=True):
            f = dict(zip(flat[::2], flat[1::2], strict=True))
            tries = int(stream_admin.meta(meta).get("tries", 0))
            items.append(StreamItem(int(f[b"id"]), entry, stream, route, f[b"m"].decode(),
                                    f[b"q"].decode(), f[b"f"], f[b"b"], int(f[b"s"]), tries))
        return Claim(items, expired)

    async def delivered(self, items: Sequence[StreamItem]) -> None:
        """Acknowledge and delete delivered entries, in one round trip."""
        async def work() -> None:
            async with self.client.pipeline(transaction=False) as pipe:
                for item in items:
                    await self.scripts["DONE"](  # queued in the pipeline
                        keys=[item.source, self.key("meta", item.route), self.key("totals")],
                        args=[GROUP, item.entry, item.id, item.size, item.route], client=pipe)
                await pipe.execute()

        await self.call(work)

    async def retry_later(self, item: StreamItem, wait: float, error: str, status: int | None,
                          *, counted: bool) -> bool:
        """Record a failed try; True when it was the last allowed attempt (a dead letter)."""
        dead = await self.run(
            "RETRY", [item.source, self.key("meta", item.route), self.key("dead", item.route)],
            [GROUP, item.entry, repr(wait), error, "" if status is None else status,
             1 if counted else 0, self.settings.max_attempts])
        return bool(dead)

    async def dead_letter(self, item: StreamItem, status: int, error: str) -> None:
        await self.run("BURY", [item.source, self.key("meta", item.route),
                                self.key("dead", item.route)],
                       [GROUP, item.entry, status, error])

    async def forget_consumers(self, route: str, owner: str,
                               idle_ms: int = _IDLE_CONSUMER_MS) -> int:
        """Drop the group's consumers that hold nothing and were idle ``idle_ms`` (an hour):
        every process that ever ran is one, and a dead one's pending entries were claimed
        already. How many were dropped."""
        async def work() -> int:
            dropped = 0
            for kind in ("q", "again"):
                key = self.key(kind, route)
                try:
                    found = await self.client.xinfo_consumers(key, GROUP)
                except ResponseError:  # no such stream (yet)
                    continue
                for consumer in found:
                    name = _text(consumer["name"])
                    if (name != owner and int(consumer["pending"]) == 0
                            and int(consumer["idle"]) >= idle_ms):
                        await self.client.xgroup_delconsumer(key, GROUP, name)
                        dropped += 1
            return dropped

        return await self.call(work)

    async def replicas(self) -> int:
        """The replicas connected to this Redis now (``INFO replication``)."""
        info = await self.call(lambda: self.client.info("replication"))
        return int(info.get("connected_slaves", 0))

    async def renew(self, route: str, owner: str, lease_ms: int) -> bool:
        return bool(await self.run("RENEW", [self.key("lease", route)], [owner, lease_ms]))

    async def release(self, route: str, owner: str) -> None:
        await self.run("RELEASE", [self.key("lease", route)], [owner])

    # -- reading and operating (admin.py) -----------------------------------------

    async def view(self, *, write_probe: bool = False) -> SpoolView:
        return await self.call(lambda: stream_admin.view(self, write_probe))

    async def entries(self, *, dead_only: bool, limit: int) -> list[Entry]:
        return await self.call(lambda: stream_admin.entries(self, dead_only, limit))

    async def requeue(self, ids: Sequence[int] | None, *, dead_only: bool = False) -> int:
        chosen = await self._dead(ids) if dead_only else ids
        if chosen is not None and not chosen:
            return 0
        return await self.call(lambda: stream_admin.requeue(self, chosen))

    async def purge(self, ids: Sequence[int] | None, *, dead_only: bool = False) -> int:
        chosen = await self._dead(ids) if dead_only else ids
        if chosen is not None and not chosen:
            return 0
        return await self.call(lambda: stream_admin.purge(self, chosen))

    async def _dead(self, ids: Sequence[int] | None) -> Sequence[int] | None:
        """Those of ``ids`` that are dead letters (None: all of them)."""
        if ids is None:
            return None
        dead = {e.id for e in await self.entries(dead_only=True,
                                                 limit=max(ids, default=0) + 10_000)}
        return [i for i in ids if i in dead]

    def counters(self) -> dict[str, int]:
        return {}

    async def close(self) -> None:
        await self.redis.close()
