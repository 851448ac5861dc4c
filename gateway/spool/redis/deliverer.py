"""Delivery from the Redis streams (docs/operations.md): any live instance delivers what any
instance accepted, one instance per route at a time, in arrival order.

Each serving process runs one ``StreamDeliverer``, a consumer of the one group named by its
pid and a random suffix. Every round it runs the claim script for each idle route (one
pipeline): the script takes the route's **lease** (a key with an expiry, refused while
another instance holds it), dead-letters heads older than ``max_age_seconds``, takes over
with ``XAUTOCLAIM`` what a former holder left pending, and returns the route's next
entries, oldest first: those pending already, then new ones (``XREADGROUP``). A head that
waits for its backoff returns nothing and keeps the lease, so nothing overtakes it.

While a batch is being sent a task renews the lease every second; a send starts only
while the lease has at least the route's timeout left, so a holder that cannot renew
stops before another instance may start. A killed instance's lease expires
``timeout_seconds + 3 s`` after its last renewal, and the next holder claims its pending
entries. Outcomes and backoff are those of the SQLite deliverer (``attempt.py``): a 2xx
deletes the entry, a connect failure, a timeout, a 5xx, 408 or 429 waits with exponential
backoff (refused connections not counted against ``max_attempts``), any other status
dead-letters it with the status and the start of the answer.

A push is sent at most once per process: the deliverer remembers the keys
(``Idempotency-Key``) of the last ``SENT_MEMORY`` pushes it delivered, and an entry that
comes back with one of them (its acknowledgement died with a primary before a replica
copied it, so the promoted one still lists it) is acknowledged without being sent again.

Every second the deliverer also moves what the local fallback file holds to the streams
(``fallback.py``) and expires the entries of routes no longer configured; every ten
minutes it drops the group's consumers that hold nothing and were idle an hour (one is
left by every process that ever ran).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from collections import OrderedDict

from gateway.config import RouteSettings
from gateway.spool.accept import Spool
from gateway.spool.attempt import attempt, backoff_seconds, end_runs, note_dead, watch_run
from gateway.spool.base import DeliveryRuntime, RuntimeSource, SpoolError
from gateway.spool.redis import admin as stream_admin
from gateway.spool.redis.fallback import FallbackStore, push_key
from gateway.spool.redis.streams import StreamItem

__all__ = ["LEASE_MARGIN_SECONDS", "StreamDeliverer"]

log = logging.getLogger(__name__)

BATCH = 32  # entries claimed per route and round
POLL_SECONDS = 0.25  # what other instances accepted, and backoffs that ended, are seen this fast
HOUSEKEEPING_SECONDS = 1.0
PRUNE_SECONDS = 600.0  # how often the consumers of processes long gone are dropped
RENEW_SECONDS = 1.0
LEASE_MARGIN_SECONDS = 3.0  # a lease lasts the route's timeout plus this
_SEND_MARGIN_SECONDS = 0.5
_RELEASE_SECONDS = 2.0
SENT_MEMORY = 50_000  # keys of pushes this process delivered: 40 min at 20 pushes/s


class _Lease:
    """One route's lease as this instance knows it: valid until ``valid_until``
    (monotonic), counted from just before the call that last set it."""

    def __init__(self, deliverer: StreamDeliverer, route: str, ttl: float,
                 valid_until: float) -> None:
        self._deliverer = deliverer
        self.route = route
        self.ttl = ttl
        self.valid_until = valid_until

    def holds(self, seconds: float) -> bool:
        return time.monotonic() + seconds + _SEND_MARGIN_SECONDS < self.valid_until

    async def keep(self) -> None:
        """Renew every second until cancelled or lost."""
        stream, owner = self._deliverer.stream, self._deliverer.owner
        while True:
            await asyncio.sleep(RENEW_SECONDS)
            started = time.monotonic()
            try:
                if not await stream.renew(self.route, owner, int(self.ttl * 1000)):
                    self.valid_until = 0.0  # expired and taken: stop sending
                    return
            except SpoolError:
                continue  # the lease runs down; sends stop before it ends
            self.valid_until = started + self.ttl


class StreamDeliverer:
    """Claims and sends spooled entries of the current runtime's routes until stopped."""

    def __init__(self, spool: Spool, fallback: FallbackStore, slot: RuntimeSource) -> None:
        self._spool = spool
        self._fallback = fallback
        self.stream = fallback.stream
        self._slot = slot
        self._settings = spool.settings
        self.owner = f"{os.getpid()}:{secrets.token_hex(4)}"
        self._busy: dict[str, asyncio.Task[None]] = {}
        self._leased: set[str] = set()  # routes whose lease this instance may hold
        self._stopping = False
        self._failing = False
        self._task: asyncio.Task[None] | None = None
        self._sent: OrderedDict[str, None] = OrderedDict()  # keys delivered, oldest first

    async def start(self) -> None:
        """Run on the serving loop: Redis's asyncio connections belong to the loop that
        opened them. The stream's health check runs here too: it follows a Sentinel
        promotion and tells the accept path when Redis cannot take pushes."""
        self.stream.health.start()
        self._task = asyncio.get_running_loop().create_task(self.run())

    async def run(self) -> None:
        next_housekeeping = next_pruning = 0.0
        while not self._stopping:
            self._spool.wake.clear()  # before claiming: an accept from now on wakes us
            runtime = self._slot.current
            try:
                routes = {route.path: route for route in runtime.settings.routes}
                gone: list[str] = []
                if time.monotonic() >= next_housekeeping:
                    next_housekeeping = time.monotonic() + HOUSEKEEPING_SECONDS
                    await self._fallback.move_local(self.owner)
                    known = await self._known()
                    gone = [r for r in known if r not in routes]
                    if time.monotonic() >= next_pruning:
                        next_pruning = time.monotonic() + PRUNE_SECONDS
                        for route in known:
                            await self.stream.forget_consumers(route, self.owner)
                idle = [(r.path, True, _ttl(r)) for r in routes.values()
                        if r.path not in self._busy]
                started = time.monotonic()
                claims = await self.stream.claim(
                    [*idle, *((r, False, 1.0) for r in gone)], self.owner, BATCH)
                for path, claim in claims.items():
                    if claim.expired:
                        self._expired(path, claim.expired)
                    if claim.items and path in routes:
                        self._leased.add(path)
                        ttl = _ttl(routes[path])
                        lease = _Lease(self, path, ttl, started + ttl)
                        self._start(runtime, routes[path], claim.items, lease)
                self._failing = False
            except SpoolError as exc:
                if not self._failing:  # once per outage: health.py repeats it every 30 s
                    log.error("spool unavailable reason_id=spool_unavailable error=%r",
                              str(exc), extra={"reason_id": "spool_unavailable"})
                self._failing = True
            with contextlib.suppress(TimeoutError):
                await self._spool.wake.wait(POLL_SECONDS)

    async def stop(self, seconds: float = 5.0) -> None:
        """Stop claiming, let deliveries in flight finish for ``seconds``, then give the
        leases back so that another instance goes on at once."""
        self._stopping = True
        self._spool.wake.set()
        await end_runs(self._busy, seconds)
        # Bounded: a Redis that is away must not hold up the drain.
        with contextlib.suppress(SpoolError, TimeoutError):
            async with asyncio.timeout(_RELEASE_SECONDS):
                for route in self._leased:
                    await self.stream.release(route, self.owner)
        await self.stream.health.stop()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _known(self) -> list[str]:
        return await self.stream.call(lambda: stream_admin.routes(self.stream))

    def _expired(self, route: str, count: int) -> None:
        self._spool.counts[f"gateway_spool_dead_letters_total:{route}"] += count
        log.warning("spool items past max_age dead-lettered reason_id=spool_expired "
                    "route=%r count=%r", route, count, extra={"reason_id": "spool_expired"})

    def _start(self, runtime: DeliveryRuntime, route: RouteSettings, items: list[StreamItem],
               lease: _Lease) -> None:
        watch_run(self._busy, route.path, self._deliver(runtime, route, items, lease),
                  self._spool.wake)

    async def _deliver(self, runtime: DeliveryRuntime, route: RouteSettings,
                       items: list[StreamItem], lease: _Lease) -> None:
        """Send a claimed batch in order, at most ``concurrency`` at once, while the lease
        holds; the first retry halts the rest, which stay pending for the next claim."""
        runtime.active += 1
        renewer = asyncio.get_running_loop().create_task(lease.keep())
        window = asyncio.Semaphore(self._settings.concurrency)
        sends: list[asyncio.Task[bool]] = []
        # Deliveries are acknowledged together when the batch ends: one round trip to
        # Redis, not one per item (a crash before it sends them again: at least once).
        delivered: list[StreamItem] = []
        halted = False

        async def one(item: StreamItem) -> bool:
            try:
                return await self._send(runtime, route, item, delivered)
            except SpoolError:
                return False  # not recorded: the entry stays pending and is tried again
            finally:
                window.release()

        try:
            for item in items:
                await window.acquire()
                halted = halted or any(t.done() and not t.result() for t in sends)
                if halted or self._stopping or not lease.holds(route.timeout_seconds):
                    halted = True
                    window.release()
                    continue
                sends.append(asyncio.get_running_loop().create_task(one(item)))
            await asyncio.gather(*sends)
        finally:
            if delivered:
                try:
                    await self.stream.delivered(delivered)
                except SpoolError as exc:
                    # Still pending: delivered again by the next claim (at least once).
                    log.error("spool deletion failed reason_id=spool_unavailable error=%r",
                              str(exc), extra={"reason_id": "spool_unavailable"})
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            runtime.active -= 1

    async def _send(self, runtime: DeliveryRuntime, route: RouteSettings, item: StreamItem,
                    delivered: list[StreamItem]) -> bool:
        """One try; False when the entry must wait (the route's batch halts)."""
        key = push_key(item.fields, item.body)
        if key in self._sent:  # delivered already; only its acknowledgement was lost
            delivered.append(item)
            self._spool.counts[f"gateway_spool_redelivery_skipped_total:{route.path}"] += 1
            return True
        outcome = await attempt(runtime.forwarder, route, item.method, item.query,
                                item.fields, item.body)
        if outcome.kind == "delivered":
            delivered.append(item)
            self._sent[key] = None
            if len(self._sent) > SENT_MEMORY:
                self._sent.popitem(last=False)
            self._spool.counts[f"gateway_spool_delivered_total:{route.path}"] += 1
            return True
        if outcome.kind == "retry":
            return await self._retry(route, item, outcome.error, outcome.status,
                                     counted=outcome.counted)
        assert outcome.status is not None  # a refusal always has the backend's status
        await self.stream.dead_letter(item, outcome.status, outcome.error)
        note_dead(self._spool.counts, route.path, item.id, outcome.status, "backend refused")
        return True

    async def _retry(self, route: RouteSettings, item: StreamItem, error: str,
                     status: int | None, *, counted: bool) -> bool:
        settings = self._settings
        wait = backoff_seconds(item.tries + 1, settings.retry_initial_seconds,
                               settings.retry_max_seconds)
        if await self.stream.retry_later(item, wait, error, status, counted=counted):
            note_dead(self._spool.counts, route.path, item.id, status, "max_attempts reached")
            return True  # the next entry may go: this one is out of the queue
        self._spool.counts[f"gateway_spool_retries_total:{route.path}"] += 1
        return False


def _ttl(route: RouteSettings) -> float:
    return route.timeout_seconds + LEASE_MARGIN_SECONDS
