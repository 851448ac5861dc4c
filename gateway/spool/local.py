"""``SqliteStore``: the spool's SQLite file as a ``backend.SpoolStore`` (docs/operations.md).

In a serving process writes go through the process's one writer thread (``writer.
SpoolWriter``: group commit) and reads through its one long-lived reader
(``status.reader_for``), so the process never opens and closes the file behind SQLite's
back (docs/architecture.md, "SQLite files"). ``gateway spool``, a process of its own,
has no writer: each of its operations opens one connection, in a thread, and closes it.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from gateway.spool import store
from gateway.spool.backend import SpoolError
from gateway.spool.status import SpoolView, reader_for

if TYPE_CHECKING:
    from gateway.config import SpoolSettings
    from gateway.spool.writer import SpoolWriter

__all__ = ["SqliteStore"]

T = TypeVar("T")


class SqliteStore:
    """``SpoolStore`` on ``settings.path``; ``writer`` is the serving process's writer
    thread, or None in a process that only operates on the file."""

    def __init__(self, settings: SpoolSettings, writer: SpoolWriter | None) -> None:
        self.settings = settings
        self.writer = writer

    async def add(self, route: str, method: str, query: str, fields: bytes,
                  body: bytes) -> int | None:
        assert self.writer is not None, "only a serving process accepts"
        limits = self.settings
        return await self.writer.call(store.insert, route, method, query, fields, body,
                                      time.time(), limits.max_items, limits.max_bytes)

    async def view(self, *, write_probe: bool = False) -> SpoolView:
        try:
            return await reader_for(self.settings.path).view(write_probe=write_probe)
        except (sqlite3.Error, OSError) as exc:
            raise _error(self.settings, exc) from None

    async def entries(self, *, dead_only: bool, limit: int) -> list[store.Entry]:
        return await self._run(lambda db: store.entries(db, dead_only=dead_only, limit=limit),
                               write=False)

    async def requeue(self, ids: Sequence[int] | None) -> int:
        return await self._run(lambda db: store.requeue(db, ids, time.time()))

    async def purge(self, ids: Sequence[int] | None) -> int:
        return await self._run(lambda db: store.purge(db, ids, time.time()))

    async def close(self) -> None:
        """Nothing to close: the writer and the reader belong to the process."""

    async def _run(self, work: Callable[[sqlite3.Connection], T], *, write: bool = True) -> T:
        if self.writer is not None:  # inside the writer's transaction
            return await self.writer.call(work)
        return await asyncio.to_thread(self._once, work, write)

    def _once(self, work: Callable[[sqlite3.Connection], T], write: bool) -> T:
        try:
            db = store.connect(self.settings.path)
        except (sqlite3.Error, OSError) as exc:
            raise _error(self.settings, exc) from None
        try:
            if not write:
                return work(db)
            with store.transaction(db):
                return work(db)
        except (sqlite3.Error, OSError) as exc:
            raise _error(self.settings, exc) from None
        finally:
            db.close()


def _error(settings: SpoolSettings, exc: BaseException) -> SpoolError:
    return SpoolError(f"{settings.path}: {exc.__class__.__name__}: {exc}")
