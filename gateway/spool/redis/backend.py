"""``spool.backend: redis``: the queue in Redis Streams shared by the fleet (docs/deploy.md);
``RedisBackend`` is this backend's ``base.SpoolBackend``.

A serving process stores through ``fallback.FallbackStore``: the streams, or the local
fallback file while Redis cannot take a push. A Redis that cannot take pushes
(unreachable, stalled, short of replicas), or pushes in the local file waiting to be
moved, make ``/readyz`` *degraded* (with the count); only a Redis and a file that both
refuse make it not ready. ``/readyz``, ``/metrics`` and the status page read the stream's
``Health`` (``health.py``), refreshed in the background, never Redis itself. A process
reads the streams through one client of its own per event loop
(``stream_for``).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import weakref
from collections import Counter

from gateway.config import SpoolSettings
from gateway.spool.accept import Spool
from gateway.spool.base import (
    Readiness,
    RuntimeSource,
    SpoolDeliverer,
    SpoolError,
    SpoolStore,
    SpoolView,
)
from gateway.spool.redis.deliverer import StreamDeliverer
from gateway.spool.redis.durability import startup_warnings
from gateway.spool.redis.fallback import FallbackStore
from gateway.spool.redis.health import CHECK_SECONDS, Health
from gateway.spool.redis.streams import StreamStore, where
from gateway.spool.sqlite.reader import reader_for
from gateway.spool.sqlite.store import SqliteStore
from gateway.spool.sqlite.writer import SpoolWriter

__all__ = ["RedisBackend", "stream_for"]

_streams: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop,
                                     dict[tuple[str, str], StreamStore]] = (
    weakref.WeakKeyDictionary())
_streams_lock = threading.Lock()


async def _health(settings: SpoolSettings) -> Health:
    """This loop's health of the streams, its background round started at the first call
    (which waits for that first round, ``CHECK_SECONDS`` at most)."""
    health = stream_for(settings).health
    if health.reachable is None:
        health.start()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CHECK_SECONDS + 0.1):
                await health.answered.wait()
    return health


def _key(settings: SpoolSettings) -> tuple[str, str]:
    return (settings.url or repr(settings.sentinel), settings.key_prefix)


def stream_for(settings: SpoolSettings) -> StreamStore:
    """This process's client of the spool's streams, made at the first call (one per
    event loop: a client's connections belong to the loop that opened them)."""
    key = _key(settings)
    with _streams_lock:
        mine = _streams.setdefault(asyncio.get_running_loop(), {})
        found = mine.get(key)
        if found is None:
            found = mine[key] = StreamStore(settings)
        return found


class RedisBackend:
    """The streams of ``settings.key_prefix``, with ``settings.path`` as the fallback file."""

    def __init__(self, settings: SpoolSettings) -> None:
        self.settings = settings

    def where(self) -> str:
        return where(self.settings)

    def exists(self) -> bool:
        return True

    def open_store(self) -> SpoolStore:
        return StreamStore(self.settings)

    def open_spool(self) -> Spool:
        counts: Counter[str] = Counter()  # the accepts' and the fallback's, one set
        local = SqliteStore(self.settings, SpoolWriter(self.settings.path))
        return Spool(self.settings, FallbackStore(StreamStore(self.settings), local, counts),
                     counts)

    def open_deliverer(self, spool: Spool, slot: RuntimeSource) -> SpoolDeliverer:
        # Redis's asyncio connections belong to the loop that opened them: the stream
        # deliverer stays on the serving loop.
        assert isinstance(spool.store, FallbackStore)  # open_spool made it
        # Called on the serving loop: /readyz in this process reads this very store's
        # health, which the accept path updates the moment a push finds Redis away.
        with _streams_lock:
            mine = _streams.setdefault(asyncio.get_running_loop(), {})
            mine[_key(self.settings)] = spool.store.stream
        return StreamDeliverer(spool, spool.store, slot)

    def startup_warnings(self) -> list[str]:
        return startup_warnings(self.settings)

    async def readiness(self) -> Readiness:
        """From the last background round (``health.py``), never from Redis itself: it
        answers at once whatever Redis does. Only the local file is probed here."""
        settings = self.settings
        health = await _health(settings)
        streams = stream_for(settings)
        member: dict[str, object] = {"backend": settings.backend, "where": self.where(),
                                     "primary": streams.redis.primary_address}
        if health.view is not None:
            member.update(health.view.summary())
        problem = health.short() if health.reachable is not None else (
            f"{streams.where}: not checked yet")
        path = settings.path
        try:
            # Probed only while Redis is away (the fallback file is made by its first push).
            local = (await reader_for(path).view(write_probe=problem is not None)
                     if problem is not None or path.exists() else None)
        except (sqlite3.Error, OSError) as exc:
            if problem is not None:
                return member, (f"spool: {problem}; and cannot write the local "
                                f"{path}: {exc.__class__.__name__}")
            local = None
        if local is not None:
            member["local"] = {"path": str(path), "depth": local.depth}
        if problem is not None:
            member["degraded"] = (f"spool: {problem}; pushes are spooled in {path} and "
                                  "moved to Redis when it takes them again")
        elif local is not None and local.depth:
            # Every instance shares the one Redis: degraded, not out of the balancer.
            member["degraded"] = (f"spool: {local.depth} push(es) in {path} waiting to "
                                  "be moved to Redis")
        return member, None

    async def views(self) -> tuple[SpoolView, SpoolView | None]:
        health = await _health(self.settings)
        if health.view is None:
            raise SpoolError(health.error or "spool: redis not read yet")
        local = None
        if self.settings.path.exists():
            try:
                local = await reader_for(self.settings.path).view()
            except (sqlite3.Error, OSError):
                local = None
        return health.view, local

    async def details(self) -> dict[str, object]:
        path = self.settings.path
        if not path.exists():
            return {}
        # Pushes taken while Redis was away, not moved yet.
        local = await SqliteStore(self.settings, None).view()
        return {"local": {"path": str(path), "depth": local.depth}}
