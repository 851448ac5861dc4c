"""``spool.backend: redis``: the queue in Redis Streams shared by the fleet (docs/deploy.md);
``RedisBackend`` is this backend's ``base.SpoolBackend``.

A serving process stores through ``fallback.FallbackStore``: the streams, or the local
fallback file while Redis cannot take a push. An unreachable Redis makes ``/readyz``
*degraded* (pushes go to the fallback file); only a Redis and a file that both refuse make
it not ready. A process reads the streams through one client of its own per event loop
(``stream_for``).
"""

from __future__ import annotations

import asyncio
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
from gateway.spool.redis.streams import StreamStore, where
from gateway.spool.sqlite.reader import reader_for
from gateway.spool.sqlite.store import SqliteStore
from gateway.spool.sqlite.writer import SpoolWriter

__all__ = ["RedisBackend", "stream_for"]

_streams: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop,
                                     dict[tuple[str, str], StreamStore]] = (
    weakref.WeakKeyDictionary())
_streams_lock = threading.Lock()


def stream_for(settings: SpoolSettings) -> StreamStore:
    """This process's client of the spool's streams, made at the first call (one per
    event loop: a client's connections belong to the loop that opened them)."""
    key = (settings.url or "", settings.key_prefix)
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
        return StreamDeliverer(spool, spool.store, slot)

    def startup_warnings(self) -> list[str]:
        return startup_warnings(self.settings)

    async def readiness(self) -> Readiness:
        settings = self.settings
        member: dict[str, object] = {"backend": settings.backend, "where": self.where()}
        path = settings.path
        streams = stream_for(settings)
        short = None
        try:
            member.update((await streams.view(write_probe=True)).summary())
            stream_problem = None
            if settings.min_replicas:
                replicas = await streams.replicas()
                if replicas < settings.min_replicas:
                    short = (f"spool: {streams.where} has {replicas} connected replica(s), "
                             f"fewer than min_replicas={settings.min_replicas}: pushes are "
                             "answered 503")
        except SpoolError as exc:
            stream_problem = str(exc)
        try:
            # Probed only while Redis is away (the fallback file is made by its first push).
            local = (await reader_for(path).view(write_probe=stream_problem is not None)
                     if stream_problem is not None or path.exists() else None)
        except (sqlite3.Error, OSError) as exc:
            if stream_problem is not None:
                return member, (f"spool: {stream_problem}; and cannot write the local "
                                f"{path}: {exc.__class__.__name__}")
            local = None
        if local is not None:
            member["local"] = {"path": str(path), "depth": local.depth}
        if stream_problem is not None:
            member["degraded"] = (f"spool: {stream_problem}; pushes are spooled in {path} and "
                                  "moved to Redis when it returns")
        elif short is not None:
            # Every instance shares the one Redis: degraded, not out of the balancer.
            member["degraded"] = short
        return member, None

    async def views(self) -> tuple[SpoolView, SpoolView | None]:
        view = await stream_for(self.settings).view()
        local = None
        if self.settings.path.exists():
            try:
                local = await reader_for(self.settings.path).view()
            except (sqlite3.Error, OSError):
                local = None
        return view, local

    async def details(self) -> dict[str, object]:
        path = self.settings.path
        if not path.exists():
            return {}
        # Pushes taken while Redis was away, not moved yet.
        local = await SqliteStore(self.settings, None).view()
        return {"local": {"path": str(path), "depth": local.depth}}
