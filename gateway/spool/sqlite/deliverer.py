"""``spool.backend: sqlite``, the sending half (docs/operations.md): every spooled request
reaches its backend.

Each gateway process runs one ``Deliverer``. For each configured route it claims the
route's first items with a lease (``statements.claim``, one transaction: the items' lease
owner and expiry are set only when no other process holds a live lease on the route), so
several workers never deliver the same item at the same time and a route is delivered by
one process at a time, in arrival order. Items go out through the current runtime's
``Forwarder.send`` with the header block stored at acceptance: the same bytes a direct
forward would have sent. ``spool.concurrency`` items of a route may be in flight at once
(1, the default, keeps arrival order exactly); a run over a route keeps claiming the
route's next batch ahead while it lasts (``lanes.py`` says why).

Outcomes: a 2xx deletes the item. A refused connection, a timeout, a broken answer, a 5xx,
408 or 429 frees it until ``next_at``, exponential backoff with jitter
(``backoff_seconds``), and halts the route's run so that nothing overtakes it. Those
that may have reached the backend count against ``max_attempts``; a connection that never
opened does not, so an outage is bounded by ``max_age_seconds`` alone. Any other status
(4xx) dead-letters the item at once with the status and an excerpt of the answer.

A killed process's leases are freed when its pid is gone (``reap``), or at their expiry.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import secrets
import sqlite3
import time
from collections.abc import Callable

from gateway.config import RouteSettings, SpoolSettings
from gateway.spool.accept import Spool
from gateway.spool.attempt import attempt, backoff_seconds, end_runs, note_dead, watch_run
from gateway.spool.base import DeliveryRuntime, RuntimeSource, SpoolError
from gateway.spool.sqlite import statements as store
from gateway.spool.sqlite.lanes import BATCH, RouteStream
from gateway.spool.sqlite.store import SqliteStore
from gateway.spool.sqlite.writer import SpoolWriter

__all__ = ["Deliverer", "writer_of"]


log = logging.getLogger(__name__)

POLL_SECONDS = 0.25  # what other workers accepted, and backoffs that ended, are seen this fast
HOUSEKEEPING_SECONDS = 1.0
_LEASE_MARGIN_SECONDS = 30.0


def _pid_alive(owner: str) -> bool:
    pid = owner.partition(":")[0]
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (ValueError, PermissionError):
        return True  # not ours to judge: wait for the lease to expire
    return True


def writer_of(spool: Spool) -> SpoolWriter:
    """The writer thread of a serving SQLite spool (``backend.SqliteBackend.open_spool``)."""
    found = spool.store
    assert isinstance(found, SqliteStore) and found.writer is not None
    return found.writer


class Deliverer:
    """Claims and sends spooled items for the current runtime's routes until stopped."""

    def __init__(self, spool: Spool, slot: RuntimeSource, settings: SpoolSettings) -> None:
        self._spool = spool
        self._writer = writer_of(spool)
        self._slot = slot
        self._settings = settings
        self.owner = f"{os.getpid()}:{secrets.token_hex(4)}"
        self._busy: dict[str, asyncio.Task[None]] = {}
        self._stopping = False
        self._failing = False
        self._in_use = False

    async def run(self) -> None:
        """The background task of the app: claim, send, repeat."""
        spool, writer = self._spool, self._writer
        next_housekeeping = 0.0
        while not self._stopping:
            spool.wake.clear()  # before claiming: an accept from now on wakes the next round
            runtime = self._slot.current
            try:
                if self._used(runtime) and time.monotonic() >= next_housekeeping:
                    next_housekeeping = time.monotonic() + HOUSEKEEPING_SECONDS
                    await self._housekeeping()
                idle = [(route.path, self._lease(route)) for route in runtime.settings.routes
                        if route.path not in self._busy]
                if idle and self._in_use:
                    claimed = await writer.call(_claim_all, idle, self.owner, time.time())
                    for route in runtime.settings.routes:
                        if claimed.get(route.path):
                            self._start(runtime, route, claimed[route.path])
                self._failing = False
            except SpoolError as exc:
                if not self._failing:  # once per outage, not four times a second
                    log.error("spool unavailable reason_id=spool_unavailable error=%r",
                              str(exc), extra={"reason_id": "spool_unavailable"})
                self._failing = True
            await spool.wake.wait(POLL_SECONDS)

    async def stop(self, seconds: float = 5.0) -> None:
        """Stop claiming; let deliveries in flight finish for ``seconds``, then cancel them
        (their leases are freed by the next process, which sees this pid gone)."""
        self._stopping = True
        self._spool.wake.set()
        await end_runs(self._busy, seconds)

    def _used(self, runtime: DeliveryRuntime) -> bool:
        """Whether this process has a spool to deliver: a spool route, or a spool file that
        a former configuration left (its items are delivered all the same)."""
        if not self._in_use:
            self._in_use = (any(r.spools for r in runtime.settings.routes)
                            or self._writer.path.exists())
        return self._in_use

    def _lease(self, route: RouteSettings) -> float:
        # Long enough for a whole batch of sequential sends that each take the timeout.
        return BATCH * route.timeout_seconds + _LEASE_MARGIN_SECONDS

    def _start(self, runtime: DeliveryRuntime, route: RouteSettings,
               items: list[store.Item]) -> None:
        watch_run(self._busy, route.path, self._deliver(runtime, route, items), self._spool.wake)

    async def _deliver(self, runtime: DeliveryRuntime, route: RouteSettings,
                       items: list[store.Item]) -> None:
        """Send a claimed batch, and the route's next batches while they last, in order, at
        most ``concurrency`` at once (``lanes.py``); the first retry halts the run."""
        runtime.active += 1  # its forwarder's pools stay open until this run is done
        stream = RouteStream(
            self._writer, route.path, self.owner, self._lease(route),
            self._settings.concurrency, functools.partial(self._try, runtime, route),
            stopping=lambda: self._stopping,
            # A reload's new runtime claims for its own routes: this run only finishes
            # what it holds.
            renew=lambda: not self._stopping and self._slot.current is runtime)
        try:
            await stream.run(items)
        finally:
            runtime.active -= 1

    async def _try(self, runtime: DeliveryRuntime, route: RouteSettings, item: store.Item,
                   deletions: list[asyncio.Future[None]], halt: Callable[[], None]) -> bool:
        try:
            return await self._send(runtime, route, item, deletions, halt)
        except SpoolError:
            return False  # the outcome was not recorded: the lease expires, it is tried again

    async def _send(self, runtime: DeliveryRuntime, route: RouteSettings, item: store.Item,
                    deletions: list[asyncio.Future[None]], halt: Callable[[], None]) -> bool:
        """One try; False when the item must wait (the route's run halts). ``halt()`` is
        called as soon as that is known, before the retry is recorded, so no other lane
        sends an item past it meanwhile."""
        outcome = await attempt(runtime.forwarder, route, item.method, item.query,
                                item.fields, item.body)
        if outcome.kind == "delivered":
            # Not awaited: the next send goes out at once, the writer commits the
            # deletions together (the stream checks them).
            deletions.append(self._writer.submit(store.delivered, item.id))
            self._spool.counts[f"gateway_spool_delivered_total:{route.path}"] += 1
            return True
        if outcome.kind == "retry":
            halt()
            return await self._retry(route, item, outcome.error, outcome.status,
                                     counted=outcome.counted)
        await self._writer.call(store.dead_letter, item.id, outcome.status, outcome.error)
        note_dead(self._spool.counts, route.path, item.id, outcome.status, "backend refused")
        return True

    async def _retry(self, route: RouteSettings, item: store.Item, error: str,
                     status: int | None, *, counted: bool) -> bool:
        settings = self._settings
        wait = backoff_seconds(item.tries + 1, settings.retry_initial_seconds,
                               settings.retry_max_seconds)
        dead = await self._writer.call(functools.partial(
            store.retry_later, counted=counted, max_attempts=settings.max_attempts),
            item.id, time.time() + wait, error, status)
        if dead:
            note_dead(self._spool.counts, route.path, item.id, status, "max_attempts reached")
            return True  # the next item may go: this one is out of the queue
        self._spool.counts[f"gateway_spool_retries_total:{route.path}"] += 1
        return False

    async def _housekeeping(self) -> None:
        """Dead-letter what is too old; free the leases of processes that died."""
        writer = self._writer
        expired = await writer.call(store.expire, time.time(), self._settings.max_age_seconds)
        for _, route in expired:
            self._spool.counts[f"gateway_spool_dead_letters_total:{route}"] += 1
        if expired:
            log.warning("spool items past max_age dead-lettered reason_id=spool_expired "
                        "count=%r", len(expired), extra={"reason_id": "spool_expired"})
        await writer.call(store.reap, self.owner, _pid_alive)


def _claim_all(db: sqlite3.Connection, routes: list[tuple[str, float]], owner: str,
               now: float) -> dict[str, list[store.Item]]:
    """Every idle route's next batch, in one transaction (one writer round trip)."""
    return {path: store.claim(db, path, owner, now, BATCH, lease) for path, lease in routes}

