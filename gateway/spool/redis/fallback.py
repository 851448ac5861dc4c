"""``spool.backend: redis``: a Redis outage is not a lost push (docs/operations.md, "Redis
outages").

``FallbackStore`` is the ``SpoolStore`` of a serving process with ``spool.backend: redis``.
A push goes to the streams; when Redis cannot take it as configured (unreachable, stalled,
read-only, out of memory, or fewer replicas than ``min_replicas`` confirmed it) it goes to
the process's fallback file instead (``spool.path``: the same SQLite file, writer thread
and fsync as ``backend: sqlite``) and is answered ``200`` from there. While the stream's
``Health`` (``health.py``, one round a second) says Redis cannot take pushes, they go
straight to the file, so an outage costs no push a timeout. A push neither can store gets
``503``; no push answered otherwise than ``200`` is ever queued (``streams.py``).

What the file holds is **moved to the streams** once Redis takes pushes again, replicas
included (``move_local``, run by the deliverer every second), oldest first per route, each
item deleted from the file only after Redis holds it as configured. Every item carries its
push key (the ``Idempotency-Key`` in its header block): Redis remembers the keys it
committed, so an item whose write timed out here but ran in Redis anyway, or a crash
between the two steps, never makes a second copy. It is not delivered from the file: one
path per route keeps the one lease, so two instances never deliver a route at once, and a
moved item is safe from the loss of this instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import sqlite3
import time
from collections import Counter
from collections.abc import Sequence

from gateway.spool.base import Entry, SpoolError, SpoolView
from gateway.spool.redis.streams import NotReplicated, StreamStore
from gateway.spool.sqlite import statements as store
from gateway.spool.sqlite.store import SqliteStore

__all__ = ["FallbackStore"]

log = logging.getLogger(__name__)

STREAM_SECONDS = 1.4  # the streams' share of the accept's 2 s; the file gets the rest
_MOVE_BATCH = 32
_MOVE_LEASE_SECONDS = 60.0
_KEY = re.compile(rb'\r\nIdempotency-Key: "([^"\r\n]+)"\r\n|^Idempotency-Key: "([^"\r\n]+)"\r\n')


def push_key(fields: bytes, body: bytes) -> str:
    """The key ``accept.py`` put in ``fields``; for an item stored before keys existed, a
    digest of the item (stable across tries, which is all the dedupe needs)."""
    found = _KEY.search(fields)
    if found:
        return (found.group(1) or found.group(2)).decode("ascii", "replace")
    return "sha256-" + hashlib.sha256(fields + b"\0" + body).hexdigest()


class FallbackStore:
    """The streams first, the local file when Redis cannot take a push."""

    def __init__(self, stream: StreamStore, local: SqliteStore, counts: Counter[str]) -> None:
        assert local.writer is not None  # a serving process's: it takes pushes
        self.stream = stream
        self.local = local  # the fallback file, through the process's writer thread
        self.writer = local.writer
        self.counts = counts  # the spool's (``accept.Spool.counts``)
        self.outage = False  # pushes are going to the file now

    async def add(self, route: str, method: str, query: str, fields: bytes,
                  body: bytes, *, key: str) -> int | None:
        health = self.stream.health
        if self.stream.usable() and health.takes_pushes():
            try:
                async with asyncio.timeout(STREAM_SECONDS):
                    found = await self.stream.add(route, method, query, fields, body, key=key)
            except NotReplicated as exc:
                # Never queued, or queued unconfirmed: the file's copy is moved (or found
                # committed already) once the replicas are back.
                self.counts[f"gateway_spool_unreplicated_total:{route}"] += 1
                self._lost(exc)
            except (SpoolError, TimeoutError) as exc:
                self.stream.trip()
                health.failed(str(exc) or f"{self.stream.where}: timed out")
                self._lost(exc)
            else:
                self._back()
                return found
        found = await self.local.add(route, method, query, fields, body)
        if found is not None:
            self.counts[f"gateway_spool_fallback_total:{route}"] += 1
        return found

    def _lost(self, exc: BaseException) -> None:
        if not self.outage:  # once per outage, not once per push
            log.error("spool redis unavailable, pushes are spooled locally "
                      "reason_id=spool_fallback error=%r path=%r",
                      str(exc) or exc.__class__.__name__, str(self.writer.path),
                      extra={"reason_id": "spool_fallback"})
        self.outage = True

    def _back(self) -> None:
        if self.outage:
            log.warning("spool redis reachable again reason_id=spool_recovered",
                        extra={"reason_id": "spool_recovered"})
        self.outage = False

    async def move_local(self, owner: str) -> int:
        """Move the local file's waiting items to the streams; how many moved."""
        if (not self.writer.path.exists() or not self.stream.usable()
                or not self.stream.health.takes_pushes()):
            return 0  # a stat, never an open: the file is created by a fallback only
        now = time.time()
        try:
            claimed = await self.writer.call(_claim_local, owner, now)
        except SpoolError:
            return 0
        moved = 0
        for route, (items, arrivals) in claimed.items():
            left = [item.id for item in items]
            try:
                for item in items:
                    stored = await self.stream.add(
                        route, item.method, item.query, item.fields, item.body,
                        key=push_key(item.fields, item.body),
                        accepted_at=arrivals.get(item.id, now))
                    if stored is None:  # never refused for the bounds; kept if it were
                        break
                    await self.writer.call(store.delivered, item.id)
                    left.remove(item.id)
                    moved += 1
                    self.counts[f"gateway_spool_moved_total:{route}"] += 1
            except SpoolError as exc:  # Redis, or the file: the rest waits for next time
                # Replicas short: the staged copy expires unqueued; the item stays here.
                self.stream.trip()
                log.warning("spool move to redis interrupted reason_id=spool_move_failed "
                            "error=%r", str(exc), extra={"reason_id": "spool_move_failed"})
            finally:
                if left:
                    with contextlib.suppress(SpoolError):
                        await self.writer.call(store.release, left, owner)
        if moved:
            self._back()
            log.info("spool items moved from the local file to redis reason_id=spool_moved "
                     "count=%r", moved, extra={"reason_id": "spool_moved"})
        return moved

    async def view(self, *, write_probe: bool = False) -> SpoolView:
        return await self.stream.view(write_probe=write_probe)

    async def entries(self, *, dead_only: bool, limit: int) -> list[Entry]:
        return await self.stream.entries(dead_only=dead_only, limit=limit)

    async def requeue(self, ids: Sequence[int] | None, *, dead_only: bool = False) -> int:
        return await self.stream.requeue(ids, dead_only=dead_only)

    async def purge(self, ids: Sequence[int] | None, *, dead_only: bool = False) -> int:
        return await self.stream.purge(ids, dead_only=dead_only)

    def counters(self) -> dict[str, int]:
        return self.local.counters()

    async def close(self) -> None:
        await self.stream.close()
        await self.local.close()


def _claim_local(db: sqlite3.Connection, owner: str, now: float
                 ) -> dict[str, tuple[list[store.Item], dict[int, float]]]:
    """Each route's first waiting items, leased to ``owner`` (the workers of one machine
    share the file: one of them moves a route at a time), with when they arrived."""
    store.reap(db, owner, _alive)
    found = {}
    for counts in store.route_counts(db):
        items = store.claim(db, counts.route, owner, now, _MOVE_BATCH, _MOVE_LEASE_SECONDS)
        if items:
            found[counts.route] = (items, store.arrivals(db, [i.id for i in items]))
    return found


def _alive(owner: str) -> bool:
    """Whether the process of ``owner`` (``pid:random``) still runs on this machine."""
    try:
        os.kill(int(owner.partition(":")[0]), 0)
    except ProcessLookupError:
        return False
    except (ValueError, PermissionError):
        return True  # not ours to judge: its lease expires
    return True
