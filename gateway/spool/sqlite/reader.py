"""``spool.backend: sqlite``, the reads: one long-lived connection per process and file
(docs/architecture.md, "SQLite files").

The spool is one file per machine, whatever the number of workers, so its depth and age
are read from the file by whoever asks (the admin listener, the supervisor's included,
``gateway spool``), never summed from the workers' snapshots. A process reads it through one
connection (``SpoolReader``), used from one thread of its own: WAL readers never wait for
the writers, the event loop never waits for either, and a scrape opens nothing (a
connection per scrape churns descriptors of a file this process's writer and deliverer hold
locks on). The status page's and ``gateway spool``'s changes go through it too.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from gateway.spool.base import SpoolView
from gateway.spool.sqlite import statements as store

__all__ = ["SpoolReader", "reader_for"]

T = TypeVar("T")
_ADMIN_TIMEOUT_SECONDS = 2.0


def _view(db: sqlite3.Connection, write_probe: bool) -> SpoolView:
    now = time.time()
    if write_probe:
        store.probe(db, now)
    items, size = store.totals(db)
    return SpoolView(store.route_counts(db), items, size, now)


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

    def _with_db(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._db is None:
            self._db = store.connect(self.path, timeout=self._timeout)
            self.opened += 1
        try:
            return work(self._db)
        except (sqlite3.Error, OSError):
            self._db.close()
            self._db = None
            raise

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """``work(db)`` on the reader's thread; raises sqlite3.Error or OSError."""
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, self._with_db, work)

    async def view(self, *, write_probe: bool = False) -> SpoolView:
        """The spool now; raises sqlite3.Error or OSError."""
        return await self.run(lambda db: _view(db, write_probe))


_readers: dict[Path, SpoolReader] = {}
_readers_lock = threading.Lock()


def reader_for(path: Path) -> SpoolReader:
    """This process's reader of the spool at ``path``, made at the first call."""
    with _readers_lock:
        reader = _readers.get(path)
        if reader is None:
            reader = _readers[path] = SpoolReader(path)
        return reader
