"""What the admin listener and ``gateway spool stats`` say about the spool (docs/operations.md).

The spool is one store per machine (the SQLite file) or per fleet (the Redis streams),
whatever the number of workers, so its depth and age are read from the store by whoever
asks (the admin listener, the supervisor's included), never summed from the workers'
snapshots. A process reads the file through one long-lived connection (``SpoolReader``),
used from one thread of its own: WAL readers never wait for the writers, the event loop
never waits for either, and a scrape opens nothing (a connection per scrape churns
descriptors of a file this process's writer and deliverer hold locks on). It reads the
streams through one client of its own (``stream_for``).
``/readyz`` also commits one small write, since "the spool can take requests" is exactly
"the store can be written". With ``backend: sqlite`` that is the only spool condition that
makes it not ready. With ``backend: redis`` an unreachable Redis makes it *degraded*
(pushes go to the local file), and only a Redis and a file that both refuse make it not
ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.spool import store

if TYPE_CHECKING:  # light to import: `gateway spool` loads it before any configuration
    from gateway.config import Settings, SpoolSettings
    from gateway.observe.metrics import Snapshot
    from gateway.spool.stream import StreamStore

__all__ = ["SpoolReader", "SpoolView", "in_use", "read_view", "reader_for",
           "spool_readiness", "spool_snapshot", "stream_for"]

_ADMIN_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class SpoolView:
    """The spool at one moment."""

    routes: list[store.RouteCounts]
    items: int
    bytes: int
    now: float

    @property
    def depth(self) -> int:
        return sum(r.queued for r in self.routes)

    @property
    def dead_letters(self) -> int:
        return sum(r.dead for r in self.routes)

    def oldest_age(self, counts: store.RouteCounts | None = None) -> float:
        """Seconds since the oldest waiting request arrived (0 when none waits)."""
        chosen = [counts] if counts is not None else self.routes
        times = [r.oldest_accepted_at for r in chosen if r.oldest_accepted_at is not None]
        return max(0.0, self.now - min(times)) if times else 0.0


def in_use(settings: Settings) -> bool:
    """A spool or fallback route is configured, the streams are chosen, or a former
    configuration left a spool file."""
    return (any(r.spools for r in settings.routes)
            or settings.spool.backend == "redis" or settings.spool.path.exists())


def _view(db: sqlite3.Connection, write_probe: bool) -> SpoolView:
    now = time.time()
    if write_probe:
        store.probe(db, now)
    items, size = store.totals(db)
    return SpoolView(store.route_counts(db), items, size, now)


def read_view(path: Path, *, write_probe: bool = False,
              timeout: float = store.BUSY_TIMEOUT_SECONDS) -> SpoolView:
    """Read the spool at ``path`` once, on a connection of its own (``gateway spool stats``,
    a process that holds no other); raises sqlite3.Error or OSError."""
    db = store.connect(path, timeout=timeout)
    try:
        return _view(db, write_probe)
    finally:
        db.close()


class SpoolReader:
    """The read side of one process: one connection, opened at the first read, kept, and
    used by one thread only. After an error it is closed and opened again at the next
    read, so a spool file that could not be read (a full disk) recovers on its own."""

    def __init__(self, path: Path, timeout: float = _ADMIN_TIMEOUT_SECONDS) -> None:
        self.path = path
        self._timeout = timeout
        self._db: sqlite3.Connection | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gateway-spool-read")
        self.opened = 0  # connections opened so far: the tests check it does not grow

    def _read(self, write_probe: bool) -> SpoolView:
        if self._db is None:
            self._db = store.connect(self.path, timeout=self._timeout)
            self.opened += 1
        try:
            return _view(self._db, write_probe)
        except (sqlite3.Error, OSError):
            self._db.close()
            self._db = None
            raise

    async def view(self, *, write_probe: bool = False) -> SpoolView:
        """The spool now; raises sqlite3.Error or OSError."""
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, self._read, write_probe)


_readers: dict[Path, SpoolReader] = {}
_readers_lock = threading.Lock()


def reader_for(path: Path) -> SpoolReader:
    """This process's reader of the spool at ``path``, made at the first call."""
    with _readers_lock:
        reader = _readers.get(path)
        if reader is None:
            reader = _readers[path] = SpoolReader(path)
        return reader


_streams: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop,
                                     dict[tuple[str, str], StreamStore]] = (
    weakref.WeakKeyDictionary())


def stream_for(settings: SpoolSettings) -> StreamStore:
    """This process's client of the spool's streams, made at the first call (one per
    event loop: a client's connections belong to the loop that opened them)."""
    from gateway.spool.stream import StreamStore

    key = (settings.url or "", settings.key_prefix)
    with _readers_lock:
        mine = _streams.setdefault(asyncio.get_running_loop(), {})
        found = mine.get(key)
        if found is None:
            found = mine[key] = StreamStore(settings)
        return found


def _member(view: SpoolView) -> dict[str, object]:
    return {"depth": view.depth, "dead_letters": view.dead_letters,
            "oldest_age_seconds": round(view.oldest_age(), 3), "bytes": view.bytes}


async def spool_readiness(settings: Settings) -> tuple[dict[str, object] | None, str | None]:
    """``/readyz``'s ``spool`` member and, when nothing can take a push, the reason; the
    member carries ``degraded`` while Redis is away and the local file takes pushes."""
    if not in_use(settings):
        return None, None
    if settings.spool.backend == "redis":
        return await _stream_readiness(settings.spool)
    path = settings.spool.path
    try:
        view = await reader_for(path).view(write_probe=True)
    except (sqlite3.Error, OSError) as exc:
        return {"path": str(path)}, f"spool: cannot write {path}: {exc.__class__.__name__}"
    return {"path": str(path), **_member(view)}, None


async def _stream_readiness(settings: SpoolSettings) -> tuple[dict[str, object], str | None]:
    from gateway.spool.backend import SpoolError, where

    member: dict[str, object] = {"backend": "redis", "where": where(settings)}
    path = settings.path
    streams = stream_for(settings)
    short = None
    try:
        member.update(_member(await streams.view(write_probe=True)))
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


async def _views(settings: Settings) -> tuple[SpoolView, SpoolView | None]:
    """The store's view and, with the streams, the local fallback file's (if any)."""
    spool = settings.spool
    if spool.backend == "sqlite":
        return await reader_for(spool.path).view(), None
    view = await stream_for(spool).view()
    local = None
    if spool.path.exists():
        with contextlib.suppress(sqlite3.Error, OSError):
            local = await reader_for(spool.path).view()
    return view, local


async def spool_snapshot(settings: Settings) -> list[Snapshot]:
    """The spool's gauges, as one more snapshot for ``metrics.render`` (none when no
    spool is in use or it cannot be read: the gauges are then absent, not zero)."""
    from gateway.spool.backend import SpoolError

    if not in_use(settings):
        return []
    try:
        view, local = await _views(settings)
    except (sqlite3.Error, OSError, SpoolError):
        return []
    found = {r.route: r for r in view.routes}
    for route in settings.routes:  # a spool route with nothing stored shows 0, not nothing
        if route.spools:
            found.setdefault(route.path, store.RouteCounts(route.path, 0, 0, 0, None))
    routes = sorted(found.values(), key=lambda r: r.route)
    snapshot: Snapshot = {
        "gateway_spool_depth": [[[r.route], r.queued] for r in routes],
        "gateway_spool_oldest_age_seconds": [[[r.route], view.oldest_age(r)] for r in routes],
        "gateway_spool_dead_letters": [[[r.route], r.dead] for r in routes],
        "gateway_spool_bytes": [[[], view.bytes]],
    }
    if local is not None:
        snapshot["gateway_spool_fallback_depth"] = [[[], local.depth]]
    return [snapshot]
