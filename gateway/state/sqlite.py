"""What the workers of one machine share (docs/configuration.md ``state``, docs/deploy.md): revoked
token ids
and failed-authentication counters.

``StateBackend`` is the whole interface a backend implements: five coroutines, each one
round trip, so a Redis backend (INCR + EXPIRE, a sorted set of revocations) fits it without
touching the stages. ``SQLiteState`` is the embedded default: WAL mode so readers never wait
for the writer, ``busy_timeout`` so workers writing at once queue instead of failing, the file
and its directory created on demand. Its calls run on one dedicated thread: the event loop
never waits on the disk. ``MemoryState`` is the same contract for one process (unit tests).

The request path never queries a backend: ``SharedState`` (``shared.py``) keeps the
revoked ids and blocked addresses in memory and refreshes them in the background. A backend
shared by several machines (``state_redis.RedisState``) is also a ``BroadcastingState``:
it pushes other instances' revocations and blocks as they happen, and keeps the per-client
token buckets of the fleet. ``open_state`` picks the backend the configuration names.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol, runtime_checkable

from gateway.state.dbfile import connect_private, make_private

if TYPE_CHECKING:
    from gateway.config import StateSettings

__all__ = ["BroadcastingState", "MemoryState", "SQLiteState", "StateBackend", "StateError",
           "StateEvent", "open_state"]

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


class StateError(Exception):
    """The shared state could not be read or written (disk, lock timeout)."""


class StateBackend(Protocol):
    async def revoke(self, jti: str, expires_at: float) -> None:
        """Remember ``jti`` as revoked until ``expires_at`` (epoch seconds)."""

    async def revoked_since(self, cursor: int) -> tuple[list[tuple[str, float]], int]:
        """Revocations after ``cursor`` (0 = all unexpired) and the new cursor."""

    async def count_failure(self, address: str, window: float, limit: int) -> float | None:
        """Count one failed authentication of ``address`` in its ``window``-second window;
        the time the address stays blocked until, once the count reaches ``limit``."""

    async def blocked(self) -> dict[str, float]:
        """Every address blocked now, with the time its block ends."""

    async def prune(self) -> None:
        """Forget expired revocations and finished windows (called now and then)."""

    async def close(self) -> None: ...


class StateEvent(NamedTuple):
    """What another instance just did: revoked token ``key`` or blocked address ``key``,
    until ``until`` (epoch seconds)."""

    kind: Literal["revoked", "blocked"]
    key: str
    until: float


@runtime_checkable
class BroadcastingState(StateBackend, Protocol):
    """A backend several machines share: it pushes events, so nobody polls it twice a
    second, and it holds the fleet's token buckets."""

    async def listen(self, on_event: Callable[[StateEvent], None],
                     on_subscribed: Callable[[], None]) -> None:
        """Deliver every instance's events until the connection breaks (StateError);
        ``on_subscribed`` runs once nothing can be missed any more, so a resync made
        after it sees everything the subscription does not."""

    async def spend(self, key: str, rate: float, burst: int, spent: int) -> float:
        """Take ``spent`` tokens from the shared bucket ``key`` (refilled at ``rate`` per
        second up to ``burst``); the tokens left, negative when the fleet overspent."""


def open_state(settings: StateSettings) -> StateBackend:
    """The backend ``settings`` names; nothing connects until the first call."""
    if settings.backend == "redis":
        # Imported here: a gateway on SQLite never loads the Redis client.
        from gateway.state.redis import RedisState

        return RedisState(settings)
    return SQLiteState(settings.path)


class MemoryState:
    """``StateBackend`` for a single process, without a file."""

    def __init__(self) -> None:
        self._revoked: list[tuple[str, float]] = []
        self._windows: dict[str, tuple[float, int, float]] = {}

    async def revoke(self, jti: str, expires_at: float) -> None:
        self._revoked.append((jti, expires_at))

    async def revoked_since(self, cursor: int) -> tuple[list[tuple[str, float]], int]:
        now = time.time()
        fresh = [(j, e) for j, e in self._revoked[cursor:] if e > now]
        return fresh, len(self._revoked)

    async def count_failure(self, address: str, window: float, limit: int) -> float | None:
        now = time.time()
        end, count, blocked = self._windows.get(address, (0.0, 0, 0.0))
        if end <= now:
            end, count, blocked = now + window, 0, 0.0
        count += 1
        if count >= limit:
            blocked = end
        self._windows[address] = (end, count, blocked)
        return blocked or None

    async def blocked(self) -> dict[str, float]:
        now = time.time()
        return {a: b for a, (_, _, b) in self._windows.items() if b > now}

    async def prune(self) -> None:
        now = time.time()
        self._windows = {a: w for a, w in self._windows.items() if w[0] > now}

    async def close(self) -> None:
        return None


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
