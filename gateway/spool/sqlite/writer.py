"""``spool.backend: sqlite``, the writes: one thread owns the file's write connection
(docs/operations.md).

Nothing blocks the event loop on the disk: ``SpoolWriter`` is one thread that owns the
write connection and runs queued operations in groups, one transaction and one fsync per
group (group commit): while one commit is being synced the next requests queue up, so a
burst of concurrent pushes shares a single fsync. Each operation runs in its own savepoint,
so one failing operation does not undo the others of its group.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from gateway.spool.base import SpoolError
from gateway.spool.sqlite import statements as store

__all__ = ["SpoolWriter"]

T = TypeVar("T")
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
