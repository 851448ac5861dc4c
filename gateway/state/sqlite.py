"""``state.backend: sqlite``: what the workers of one machine share, in one file
(docs/configuration.md ``state``, docs/deploy.md): revoked token ids and failed-authentication
counters.

``SQLiteState`` implements ``base.StateBackend``: WAL mode so readers never wait for the
writer, ``busy_timeout`` so workers writing at once queue instead of failing, the file and
its directory created on demand. Its calls run on one dedicated thread: the event loop
never waits on the disk.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from gateway.state.base import StateError
from gateway.state.dbfile import connect_private, make_private

__all__ = ["SQLiteState"]

_BUSY_TIMEOUT_MS = 5000
_SCHEMA = """
CREATE TABLE IF NOT EXISTS revoked (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    jti TEXT NOT NULL UNIQUE,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS failed_auth (
    address TEXT PRIMARY KEY,
    window_end REAL NOT NULL,
    count INTEGER NOT NULL,
    blocked_until REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS failed_auth_blocked ON failed_auth (blocked_until);
"""


class SQLiteState:
    """``StateBackend`` on an SQLite file shared by the workers of one machine."""

    def __init__(self, path: Path) -> None:
        self._path = path
        # One thread owns the connection: SQLite connections are not for concurrent use.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gateway-state")
        self._db: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            # 0600 like the spool: it holds the revoked token ids (state/dbfile.py).
            db = connect_private(self._path, timeout=_BUSY_TIMEOUT_MS / 1000)
            db.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            # WAL: the workers' readers never block on a writer; NORMAL: no fsync per
            # commit (a power cut may lose the last revocations, never corrupt the file).
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            db.executescript(_SCHEMA)
            make_private(self._path)
            self._db = db
        return self._db

    async def _run(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        def work() -> list[tuple[Any, ...]]:
            return self._connect().execute(sql, params).fetchall()

        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, work)
        except sqlite3.Error as exc:
            raise StateError(f"{self._path}: {exc.__class__.__name__}: {exc}") from None

    async def revoke(self, jti: str, expires_at: float) -> None:
        await self._run("INSERT OR IGNORE INTO revoked (jti, expires_at) VALUES (?, ?)",
                        (jti, expires_at))

    async def revoked_since(self, cursor: int) -> tuple[list[tuple[str, float]], int]:
        rows = await self._run("SELECT seq, jti, expires_at FROM revoked WHERE seq > ? "
                               "AND expires_at > ? ORDER BY seq", (cursor, time.time()))
        if not rows:
            return [], cursor
        return [(str(j), float(e)) for _, j, e in rows], int(rows[-1][0])

    async def count_failure(self, address: str, window: float, limit: int) -> float | None:
        now = time.time()
        # One statement, so two workers counting at once cannot lose an increment.
        rows = await self._run(
            "INSERT INTO failed_auth (address, window_end, count) VALUES (?, ?, 1) "
            "ON CONFLICT (address) DO UPDATE SET "
            "count = CASE WHEN window_end <= ?3 THEN 1 ELSE count + 1 END, "
            "blocked_until = CASE WHEN window_end <= ?3 THEN 0 ELSE blocked_until END, "
            "window_end = CASE WHEN window_end <= ?3 THEN excluded.window_end "
            "ELSE window_end END "
            "RETURNING window_end, count",
            (address, now + window, now))
        end, count = rows[0]
        if int(count) < limit:
            return None
        await self._run("UPDATE failed_auth SET blocked_until = window_end WHERE address = ?",
                        (address,))
        return float(end)

    async def blocked(self) -> dict[str, float]:
        rows = await self._run("SELECT address, blocked_until FROM failed_auth "
                               "WHERE blocked_until > ?", (time.time(),))
        return {str(a): float(b) for a, b in rows}

    async def prune(self) -> None:
        now = time.time()
        await self._run("DELETE FROM revoked WHERE expires_at <= ?", (now,))
        await self._run("DELETE FROM failed_auth WHERE window_end <= ?", (now,))

    async def close(self) -> None:
        def work() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        await asyncio.get_running_loop().run_in_executor(self._executor, work)
        self._executor.shutdown(wait=False)
