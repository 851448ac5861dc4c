"""``SqliteStore``: the spool's SQLite file as a ``base.SpoolStore`` (docs/operations.md).

In a serving process writes go through the process's one writer thread (``writer.
SpoolWriter``: group commit). Everything else, and every call of a process without a writer
(``gateway spool``, the status page of the admin listener), goes through the process's one
long-lived connection (``reader.reader_for``), so the process never opens and closes the
file behind SQLite's back (docs/architecture.md, "SQLite files").
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from gateway.spool.base import Entry, SpoolError, SpoolView
from gateway.spool.sqlite import statements as store
from gateway.spool.sqlite.reader import reader_for

if TYPE_CHECKING:
    from gateway.config import SpoolSettings
    from gateway.spool.sqlite.writer import SpoolWriter

__all__ = ["SqliteStore"]

T = TypeVar("T")


class SqliteStore:
    """``SpoolStore`` on ``settings.path``; ``writer`` is the serving process's writer
    thread (closed with the store), or None in a process that only operates on the file."""

    def __init__(self, settings: SpoolSettings, writer: SpoolWriter | None) -> None:
        self.settings = settings
        self.writer = writer

    async def add(self, route: str, method: str, query: str, fields: bytes,
                  body: bytes, *, key: str = "") -> int | None:
        """``key`` is in ``fields`` already (``accept.py``): the file keeps it there."""
        assert self.writer is not None, "only a serving process accepts"
        limits = self.settings
        return await self.writer.call(store.insert, route, method, query, fields, body,
                                      time.time(), limits.max_items, limits.max_bytes)

    async def view(self, *, write_probe: bool = False) -> SpoolView:
        try:
            return await reader_for(self.settings.path).view(write_probe=write_probe)
        except (sqlite3.Error, OSError) as exc:
            raise _error(self.settings, exc) from None

    async def entries(self, *, dead_only: bool, limit: int) -> list[Entry]:
        return await self._run(lambda db: store.entries(db, dead_only=dead_only, limit=limit),
                               write=False)

    async def requeue(self, ids: Sequence[int] | None, *, dead_only: bool = False) -> int:
        return await self._run(lambda db: store.requeue(db, _chosen(db, ids, dead_only),
                                                        time.time()))

    async def purge(self, ids: Sequence[int] | None, *, dead_only: bool = False) -> int:
        return await self._run(lambda db: store.purge(db, _chosen(db, ids, dead_only),
                                                      time.time()))

    def counters(self) -> dict[str, int]:
        if self.writer is None:
            return {}
        return {"gateway_spool_commits_total": self.writer.commits}

    async def close(self) -> None:
        """Commit what is queued and end the writer; the reader belongs to the process."""
        if self.writer is not None:
            await self.writer.close()

    async def _run(self, work: Callable[[sqlite3.Connection], T], *, write: bool = True) -> T:
        if self.writer is not None:  # inside the writer's transaction
            return await self.writer.call(work)

        def once(db: sqlite3.Connection) -> T:
            if not write:
                return work(db)
            with store.transaction(db):
                return work(db)

        try:
            return await reader_for(self.settings.path).run(once)
        except (sqlite3.Error, OSError) as exc:
            raise _error(self.settings, exc) from None


def _chosen(db: sqlite3.Connection, ids: Sequence[int] | None,
            dead_only: bool) -> Sequence[int] | None:
    """``ids``, or with ``dead_only`` those of them that are dead letters (None: all)."""
    if ids is None or not dead_only:
        return ids
    return [i for i in ids if db.execute(
        "SELECT 1 FROM items WHERE id = ? AND dead = 1", (i,)).fetchone()]


def _error(settings: SpoolSettings, exc: BaseException) -> SpoolError:
    return SpoolError(f"{settings.path}: {exc.__class__.__name__}: {exc}")
