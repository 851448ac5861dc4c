"""Spool delivery, the accepting half (docs/operations.md): store durably, then answer ``200``.

A ``delivery: spool`` route runs every stage of ``pipeline.py``; then, instead of the
forward, ``Spool.accept`` builds the header block exactly as the forwarder would
(``forward_headers.request_fields``), stores it with the method, raw query and body in the
spool's store (``backend.SpoolStore``: the SQLite file of ``store.py``, or the Redis
streams of ``stream.py``) and answers ``200`` once the store holds it durably. The
deliverer (``deliverer.py``, ``stream_deliverer.py``) sends it later.

Nothing here blocks the event loop on the disk: ``SpoolWriter`` is one thread that owns the
write connection and runs queued operations in groups, one transaction and one fsync per
group (group commit): while one commit is being synced the next requests queue up, so a
burst of concurrent pushes shares a single fsync. Each operation runs in its own savepoint,
so one failing operation does not undo the others of its group.

Past ``spool.max_items`` or ``max_bytes`` (queued and dead letters: both occupy the disk),
or when the file cannot be written, the route answers ``503`` with ``Retry-After``: IRIS's
own retry is then used, nothing accepted is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web

from gateway.config import RouteSettings, SpoolSettings
from gateway.errors import ServiceUnavailableError
from gateway.forward.headers import request_fields
from gateway.spool import store
from gateway.spool.backend import SpoolError
from gateway.spool.local import SqliteStore

if TYPE_CHECKING:
    from gateway.spool.backend import SpoolStore

__all__ = ["Spool", "SpoolError", "SpoolWriter", "Wake"]  # SpoolError: from backend.py

log = logging.getLogger(__name__)

T = TypeVar("T")
# Well inside IRIS's 3 s: a disk that stalls longer gets a 503, which IRIS retries.
ACCEPT_TIMEOUT_SECONDS = 2.0
RETRY_AFTER_SECONDS = 5
_MAX_GROUP = 512  # operations per transaction: bounds the time a commit holds the lock
_Op = tuple[Callable[..., Any], tuple[Any, ...], asyncio.Future[Any], asyncio.AbstractEventLoop]


class SpoolWriter:
    """One thread, one connection: ``await call(fn, *args)`` runs ``fn(db, *args)`` inside a
    transaction shared with whatever else was queued meanwhile."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.commits = 0  # transactions committed; with ``operations``: the group size
        self.operations = 0
        self._queue: queue.SimpleQueue[_Op | None] = queue.SimpleQueue()
        self._db: sqlite3.Connection | None = None
        self._thread = threading.Thread(target=self._run, name="gateway-spool", daemon=True)
        self._thread.start()

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.submit(fn, *args)

    def submit(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Queue ``fn(db, *args)`` now; the future resolves once its group is committed.
        No task is made for it: the deliverer queues a deletion per item this way."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((fn, args, future, loop))
        return future

    async def close(self) -> None:
        """Finish what is queued, then close the connection and end the thread."""
        self._queue.put(None)
        await asyncio.get_running_loop().run_in_executor(None, self._thread.join)

    def _run(self) -> None:
        running = True
        while running:
            first = self._queue.get()
            group: list[_Op] = []
            if first is None:
                running = False
            else:
                group.append(first)
            while running and len(group) < _MAX_GROUP:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    running = False
                else:
                    group.append(more)
            if group:
                self._execute(group)
        if self._db is not None:
            self._db.close()

    def _execute(self, group: list[_Op]) -> None:
        outcomes: list[tuple[bool, Any]] = []
        try:
            if self._db is None:
                self._db = store.connect(self.path)
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            for fn, args, _, _ in group:
                db.execute("SAVEPOINT op")
                try:
                    outcomes.append((True, fn(db, *args)))
                except Exception as exc:  # handed to the caller's future
                    db.execute("ROLLBACK TO op")
                    outcomes.append((False, exc))
                db.execute("RELEASE op")
            db.execute("COMMIT")
            self.commits += 1
            self.operations += len(group)
        except (sqlite3.Error, OSError) as exc:
            self._abandon()
            error = SpoolError(f"{self.path}: {exc.__class__.__name__}: {exc}")
            outcomes = [(False, error)] * len(group)
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
        for (_, _, future, loop), (ok, value) in zip(group, outcomes, strict=True):
            by_loop.setdefault(loop, []).append((future, ok, value))
        for loop, results in by_loop.items():
            # One wake-up of the loop per group, not one per request; a closed loop has
            # nobody waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, results)

    def _abandon(self) -> None:
        """After a failed transaction: roll back, and reconnect on the next group."""
        db, self._db = self._db, None
        if db is not None:
            with contextlib.suppress(sqlite3.Error):
                if db.in_transaction:
                    db.execute("ROLLBACK")
            db.close()


def _resolve(results: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in results:
        if future.done():  # the caller gave up (timeout); the row may exist all the same
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


class Wake:
    """What wakes the deliverer (``spool/thread.py``), which waits on a loop of its own:
    ``set`` may be called from any thread and, on the accept path, costs a flag unless the
    deliverer is waiting right then."""

    def __init__(self) -> None:
        self._flag = False
        self._waiter: tuple[asyncio.AbstractEventLoop, asyncio.Future[None]] | None = None

    def set(self) -> None:
        self._flag = True
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            loop, future = waiter
            with contextlib.suppress(RuntimeError):  # a closed loop has nobody waiting
                loop.call_soon_threadsafe(_settle, future)

    def clear(self) -> None:
        self._flag = False

    async def wait(self, seconds: float) -> None:
        """Return once set (at once if it is) or after ``seconds``."""
        if self._flag:
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._waiter = (loop, future)
        if self._flag:  # set between the test and the publication of the waiter
            self._waiter = None
            return
        try:
            async with asyncio.timeout(seconds):
                await future
        except TimeoutError:
            pass
        finally:
            self._waiter = None


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Spool:
    """The spool of one process: its writer, the accept path and the spool's counters
    (``metrics.CounterSource``; the deliverer adds its own to ``counts``). ``store`` is
    where ``accept`` stores: the SQLite file through ``writer``, unless
    ``backend.open_spool`` put the Redis streams there."""

    def __init__(self, settings: SpoolSettings) -> None:
        self.settings = settings
        self.writer = SpoolWriter(settings.path)
        self.store: SpoolStore = SqliteStore(settings, self.writer)
        self.counts: Counter[str] = Counter()
        # Set on every accept: the deliverer of this process starts at once, not at its poll.
        self.wake = Wake()

    def counters(self) -> dict[str, int]:
        counts = dict(self.counts)
        counts["gateway_spool_commits_total"] = self.writer.commits
        return counts

    async def accept(self, request: web.Request, route: RouteSettings, body: bytes, *,
                     client_id: str | None, scope: str | None, request_id: str,
                     forwarded_proto: str, client_address: str,
                     traceparent: str = "") -> web.Response:
        """Store the request as the forwarder would send it; 200 once it is on disk, or
        ServiceUnavailableError (503 + Retry-After) when it cannot be stored."""
        method = request.method
        fields = request_fields(request.headers, method, len(body), route,
                                client_id=client_id, scope=scope, request_id=request_id,
                                forwarded_proto=forwarded_proto, client_address=client_address,
                                traceparent=traceparent)
        try:
            async with asyncio.timeout(ACCEPT_TIMEOUT_SECONDS):
                item_id = await self.store.add(route.path, method,
                                               request.rel_url.raw_query_string, fields, body)
        except (SpoolError, TimeoutError) as exc:
            error = exc if isinstance(exc, SpoolError) else SpoolError("timed out")
            log.error("spool write failed reason_id=%s error=%r", error.reason_id, str(exc),
                      extra={"reason_id": error.reason_id})
            raise ServiceUnavailableError(error.answer, headers=_RETRY_AFTER) from None
        if item_id is None:
            self.counts[f"gateway_spool_refused_total:{route.path}"] += 1
            raise ServiceUnavailableError("The spool is full; retry later.",
                                          headers=_RETRY_AFTER)
        self.counts[f"gateway_spool_accepted_total:{route.path}"] += 1
        self.wake.set()
        return web.Response(status=route.success_status or 200,
                            body=b'{"spooled":true,"id":%d}' % item_id,
                            content_type="application/json")

    async def close(self) -> None:
        await self.store.close()
        await self.writer.close()


_RETRY_AFTER = {"Retry-After": str(RETRY_AFTER_SECONDS)}
