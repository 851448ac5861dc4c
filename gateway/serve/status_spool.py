"""The status page's way into the spool's dead letters (docs/operations.md#the-status-page).

Everything the page reads of or does to single items passes through ``dead_letters`` and
``change``. On the SQLite spool they use the statements of ``spool/store.py`` that
``gateway spool list|retry|purge`` use, through one connection per process, opened at first
use, kept, and used by one thread of its own, as ``spool/status.py`` does for its reads. On
the Redis spool they use the commands' own functions (``spool/commands.py``). The rules are
the same either way: an item a deliverer holds is left alone, only dead letters are
touched, and nothing returned holds a header or a body (``store.Entry`` has neither).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal, TypeVar

from gateway.config import Settings
from gateway.spool import commands, store

__all__ = ["Action", "change", "dead_letters"]

Action = Literal["retry", "purge"]
_T = TypeVar("_T")
_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gateway-status-spool")
_connections: dict[Path, sqlite3.Connection] = {}
_lock = threading.Lock()


def _with_db(path: Path, work: Callable[[sqlite3.Connection], _T]) -> _T:
    with _lock:
        db = _connections.get(path)
        if db is None:
            db = _connections[path] = store.connect(path, timeout=2.0)
    try:
        return work(db)
    except (sqlite3.Error, OSError):
        with _lock:  # opened again at the next call: a full disk recovers on its own
            _connections.pop(path, None)
        db.close()
        raise


async def dead_letters(settings: Settings, limit: int) -> list[store.Entry]:
    """The first ``limit`` dead letters, oldest first; raises sqlite3.Error, OSError or
    SpoolError."""
    if settings.spool.backend == "redis":
        return await commands.spool_entries(settings, dead_only=True, limit=limit)
    return await asyncio.get_running_loop().run_in_executor(
        _executor, _with_db, settings.spool.path,
        lambda db: store.entries(db, dead_only=True, limit=limit))


async def change(settings: Settings, action: Action, ids: Sequence[int] | None) -> int:
    """Requeue (``retry``) or drop (``purge``) dead letters (``ids`` None: all of them);
    how many changed. Items that are not dead letters are left alone here: the page offers
    its actions on dead letters only."""
    if settings.spool.backend == "redis":
        return await _change_streams(settings, action, ids)
    path = settings.spool.path

    def work(db: sqlite3.Connection) -> int:
        now = time.time()
        with store.transaction(db):
            chosen: Sequence[int] | None = None
            if ids is not None:  # only dead letters: a waiting item is not the page's to touch
                chosen = [i for i in ids if db.execute(
                    "SELECT 1 FROM items WHERE id = ? AND dead = 1", (i,)).fetchone()]
                if not chosen:
                    return 0
            if action == "retry":
                return store.requeue(db, chosen, now)
            return store.purge(db, chosen, now)

    return await asyncio.get_running_loop().run_in_executor(_executor, _with_db, path, work)


async def _change_streams(settings: Settings, action: Action, ids: Sequence[int] | None) -> int:
    chosen: Sequence[int] | None = None
    if ids is not None:  # only dead letters, as on the file
        dead = {e.id for e in await commands.spool_entries(settings, dead_only=True,
                                                           limit=max(ids, default=0) + 10_000)}
        chosen = [i for i in ids if i in dead]
        if not chosen:
            return 0
    if action == "retry":
        return await commands.spool_retry(settings, chosen)
    return await commands.spool_purge(settings, chosen)
