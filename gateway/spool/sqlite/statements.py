"""``spool.backend: sqlite``, the file (docs/operations.md): its schema and every statement,
synchronous.

One row per accepted request, keyed by an ``AUTOINCREMENT`` id, so ids are arrival order and
never reused. A row holds what the forwarder needs to send the very same request later (the
method, the raw query, the header block ``forward/headers.request_fields`` built, the body)
and its delivery state: ``attempts``, ``next_at`` (backoff), a lease (``lease_owner``,
``lease_until``) while a deliverer holds it, ``dead`` once it is on the dead-letter list.

The file is in WAL mode with ``synchronous = FULL``: a commit is on disk (the WAL fsynced)
before it returns, so an accepted request survives a ``kill -9`` or a power cut. Triggers
keep a one-row ``totals`` table (items, bytes) so the bounds cost one read per insert. The
functions taking a connection run inside the caller's transaction (``writer.SpoolWriter``
groups many into one commit); the file is private to its owner (0600), since a route
with ``forward_authorization`` stores the bearer token in the header block.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from gateway.spool.base import Entry, RouteCounts
from gateway.state.dbfile import connect_private, make_private

__all__ = ["Item", "arrivals", "claim", "connect", "dead_letter",
           "delivered", "entries", "expire", "insert", "probe", "purge", "reap", "release",
           "requeue", "retry_later", "route_counts", "totals", "transaction"]

BUSY_TIMEOUT_SECONDS = 5.0
_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    route TEXT NOT NULL,
    method TEXT NOT NULL,
    size INTEGER NOT NULL,
    accepted_at REAL NOT NULL,
    queued_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    tries INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until REAL NOT NULL DEFAULT 0,
    dead INTEGER NOT NULL DEFAULT 0,
    last_status INTEGER,
    last_error TEXT,
    query TEXT NOT NULL,
    fields BLOB NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS items_route ON items (route, dead, id);
CREATE INDEX IF NOT EXISTS items_age ON items (dead, queued_at);
CREATE INDEX IF NOT EXISTS items_leased ON items (lease_owner) WHERE lease_owner IS NOT NULL;
CREATE TABLE IF NOT EXISTS totals (
    one INTEGER PRIMARY KEY CHECK (one = 1), items INTEGER NOT NULL, bytes INTEGER NOT NULL);
INSERT OR IGNORE INTO totals VALUES (1, 0, 0);
CREATE TRIGGER IF NOT EXISTS items_in AFTER INSERT ON items BEGIN
    UPDATE totals SET items = items + 1, bytes = bytes + NEW.size WHERE one = 1; END;
CREATE TRIGGER IF NOT EXISTS items_out AFTER DELETE ON items BEGIN
    UPDATE totals SET items = items - 1, bytes = bytes - OLD.size WHERE one = 1; END;
CREATE TABLE IF NOT EXISTS probe (one INTEGER PRIMARY KEY CHECK (one = 1), at REAL NOT NULL);
"""
_ITEM = "id, route, method, query, fields, body, tries"
_ENTRY = "id, route, method, size, accepted_at, attempts, next_at, dead, last_status, last_error"


@dataclass(frozen=True, slots=True)
class Item:
    """A claimed request, ready to send again."""

    id: int
    route: str
    method: str
    query: str
    fields: bytes
    body: bytes
    tries: int  # failed tries so far, refused connections included: the backoff's exponent


def connect(path: Path, *, timeout: float = BUSY_TIMEOUT_SECONDS) -> sqlite3.Connection:
    """Open (creating if needed, mode 0600) the spool at ``path``; autocommit mode, so
    callers open their transactions themselves."""
    # Never os.open the file here: closing that descriptor would drop this process's
    # SQLite locks on it (state/dbfile.py).
    db = connect_private(path, timeout=timeout)
    try:
        db.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        db.execute("PRAGMA journal_mode = WAL")
        # FULL: the WAL is fsynced at every commit; an answered 200 is on disk.
        db.execute("PRAGMA synchronous = FULL")
        db.executescript(_SCHEMA)
        make_private(path)  # a -wal or -shm an older version left with another mode
    except (sqlite3.Error, OSError):
        db.close()
        raise
    return db


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction taken at once (``IMMEDIATE``), so it never fails half-way on a
    lock another process holds."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


# -- inside a transaction ---------------------------------------------------------------

def insert(db: sqlite3.Connection, route: str, method: str, query: str, fields: bytes,
           body: bytes, now: float, max_items: int, max_bytes: int) -> int | None:
    """Store a request; its id, or None when the spool's bounds leave no room."""
    size = len(fields) + len(body)
    items, stored = db.execute("SELECT items, bytes FROM totals").fetchone()
    if items + 1 > max_items or stored + size > max_bytes:
        return None
    cursor = db.execute(
        "INSERT INTO items (route, method, size, accepted_at, queued_at, query, fields, body) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (route, method, size, now, now, query, fields, body))
    return int(cursor.lastrowid or 0)


def claim(db: sqlite3.Connection, route: str, owner: str, now: float, limit: int,
          lease_seconds: float, *, after: int = 0) -> list[Item]:
    """Lease up to ``limit`` of ``route``'s first items to ``owner``, in arrival order.

    Nothing when another owner holds a live lease on any of them (one deliverer per route at
    a time keeps the order), when the head is backing off (nothing overtakes it) or when
    ``owner`` already has items of the route in flight. ``after``: the last id of a batch
    ``owner`` is still delivering; the items behind it are claimed as if they were the head,
    so the next batch is in hand before the current one ends (the others' leases and a head
    backing off still stop it)."""
    rows = db.execute("SELECT id, lease_owner, lease_until, next_at, tries FROM items "
                      "WHERE route = ? AND dead = 0 AND id > ? ORDER BY id LIMIT ?",
                      (route, after, limit)).fetchall()
    if not rows or rows[0][3] > now:
        return []
    if any(lease_owner is not None and lease_until > now
           for _, lease_owner, lease_until, _, _ in rows):
        return []
    # A head that failed before is tried alone: while the backend is down, one request
    # probes it instead of a batch being leased and released again at every retry.
    take = [rows[0][0]] if rows[0][4] else [
        row[0] for row in itertools.takewhile(lambda row: row[3] <= now, rows)]
    marks = ",".join("?" * len(take))
    db.execute(f"UPDATE items SET lease_owner = ?, lease_until = ? WHERE id IN ({marks})",  # noqa: S608 - placeholders only
               (owner, now + lease_seconds, *take))
    found = db.execute(f"SELECT {_ITEM} FROM items WHERE id IN ({marks}) ORDER BY id",  # noqa: S608
                       take).fetchall()
    return [Item(i, r, m, q, f, b, a) for i, r, m, q, f, b, a in found]


def arrivals(db: sqlite3.Connection, ids: Sequence[int]) -> dict[int, float]:
    """When each of ``ids`` was accepted (what a move to the Redis streams keeps)."""
    marks = ",".join("?" * len(ids))
    return dict(db.execute(f"SELECT id, accepted_at FROM items WHERE id IN ({marks})",  # noqa: S608
                           list(ids)).fetchall())


def delivered(db: sqlite3.Connection, item_id: int) -> None:
    db.execute("DELETE FROM items WHERE id = ?", (item_id,))


def retry_later(db: sqlite3.Connection, item_id: int, next_at: float, error: str,
                status: int | None, *, counted: bool, max_attempts: int) -> bool:
    """Record a failed try and free the item until ``next_at``; True when it was the last
    allowed attempt and the item went to the dead-letter list instead."""
    db.execute("UPDATE items SET attempts = attempts + ?, tries = tries + 1, next_at = ?, "
               "last_error = ?, last_status = ?, lease_owner = NULL, lease_until = 0 "
               "WHERE id = ?",
               (1 if counted else 0, next_at, error, status, item_id))
    row = db.execute("SELECT attempts FROM items WHERE id = ?", (item_id,)).fetchone()
    if row is None or row[0] < max_attempts:
        return False
    dead_letter(db, item_id, status, f"{error} (after {row[0]} attempts)")
    return True


def dead_letter(db: sqlite3.Connection, item_id: int, status: int | None, error: str) -> None:
    db.execute("UPDATE items SET dead = 1, last_status = ?, last_error = ?, "
               "lease_owner = NULL, lease_until = 0 WHERE id = ?", (status, error, item_id))


def release(db: sqlite3.Connection, ids: Sequence[int], owner: str) -> None:
    """Give back leased items that were not tried (a halted batch, a shutdown)."""
    for item_id in ids:
        db.execute("UPDATE items SET lease_owner = NULL, lease_until = 0 "
                   "WHERE id = ? AND lease_owner = ?", (item_id, owner))


def expire(db: sqlite3.Connection, now: float, max_age: float) -> list[tuple[int, str]]:
    """Dead-letter queued items older than ``max_age`` that nobody holds; (id, route) each."""
    rows = db.execute("SELECT id, route FROM items WHERE dead = 0 AND queued_at < ? "
                      "AND (lease_owner IS NULL OR lease_until <= ?)",
                      (now - max_age, now)).fetchall()
    for item_id, _ in rows:
        dead_letter(db, item_id, None, f"undelivered after max_age_seconds={max_age:g}")
    return [(int(i), str(r)) for i, r in rows]


def reap(db: sqlite3.Connection, owner: str, alive: Callable[[str], bool]) -> int:
    """Free the leases of owners that are no longer running (a worker killed mid-delivery),
    without waiting for their expiry; ``alive(owner)`` decides. The number freed."""
    owners = [o for (o,) in db.execute("SELECT DISTINCT lease_owner FROM items "
                                       "WHERE lease_owner IS NOT NULL")]
    freed = 0
    for other in owners:
        if other != owner and not alive(other):
            freed += db.execute("UPDATE items SET lease_owner = NULL, lease_until = 0 "
                                "WHERE lease_owner = ?", (other,)).rowcount
    return freed


# -- reading and operating (the CLI, /readyz, /metrics) ---------------------------------

def totals(db: sqlite3.Connection) -> tuple[int, int]:
    """(items, bytes) stored, queued and dead letters together."""
    items, stored = db.execute("SELECT items, bytes FROM totals").fetchone()
    return int(items), int(stored)


def route_counts(db: sqlite3.Connection) -> list[RouteCounts]:
    counts: dict[str, list[int]] = {}
    for route, dead, number, size in db.execute(
            "SELECT route, dead, count(*), sum(size) FROM items GROUP BY route, dead"):
        entry = counts.setdefault(route, [0, 0, 0])
        entry[1 if dead else 0] += number
        entry[2] += size
    result = []
    for route, (queued, dead, size) in sorted(counts.items()):
        head = db.execute("SELECT accepted_at FROM items WHERE route = ? AND dead = 0 "
                          "ORDER BY id LIMIT 1", (route,)).fetchone()
        result.append(RouteCounts(route, queued, dead, size, head[0] if head else None))
    return result


def entries(db: sqlite3.Connection, *, dead_only: bool, limit: int) -> list[Entry]:
    where = "WHERE dead = 1" if dead_only else ""
    rows = db.execute(f"SELECT {_ENTRY} FROM items {where} ORDER BY id LIMIT ?",  # noqa: S608
                      (limit,)).fetchall()
    return [Entry(i, r, m, s, a, t, n, bool(d), st, e) for i, r, m, s, a, t, n, d, st, e in rows]


def requeue(db: sqlite3.Connection, ids: Sequence[int] | None, now: float) -> int:
    """Queue items again with fresh attempts and age (``None``: every dead letter); an item
    a deliverer holds right now is left alone. The number requeued."""
    sql = ("UPDATE items SET dead = 0, attempts = 0, tries = 0, next_at = 0, queued_at = ?, "
           "last_error = NULL, last_status = NULL WHERE (lease_owner IS NULL OR lease_until <= ?)")
    if ids is None:
        return db.execute(sql + " AND dead = 1", (now, now)).rowcount
    return sum(db.execute(sql + " AND id = ?", (now, now, i)).rowcount for i in ids)


def purge(db: sqlite3.Connection, ids: Sequence[int] | None, now: float) -> int:
    """Drop items (``None``: every dead letter); the number dropped. As for ``requeue``, an
    item a deliverer holds right now is left alone: it may be on its way to the backend."""
    if ids is None:
        return db.execute("DELETE FROM items WHERE dead = 1").rowcount
    return sum(db.execute("DELETE FROM items WHERE id = ? AND "
                          "(lease_owner IS NULL OR lease_until <= ?)", (i, now)).rowcount
               for i in ids)


def probe(db: sqlite3.Connection, now: float) -> None:
    """One committed write: what /readyz needs to know the spool can take requests."""
    with transaction(db):
        db.execute("INSERT INTO probe VALUES (1, ?) ON CONFLICT (one) DO UPDATE SET at = ?",
                    (now, now))
