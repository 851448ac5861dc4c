"""The request path's view of the shared state (docs/architecture.md, docs/deploy.md), kept in
memory.

``SharedState`` mirrors the backend's revoked token ids and blocked addresses in a ``set``
and a ``dict``: a bearer request costs one set lookup, never a query. With the embedded
backend one background task re-reads them every ``REFRESH_SECONDS``, so a revocation made by
any worker reaches every other within a second (docs/architecture.md). With a broadcasting backend
(Redis, several machines) other instances' revocations and blocks arrive as events the
moment they happen, a full resynchronisation every ``RESYNC_SECONDS`` repairs a missed one,
and the fleet's per-client token buckets are synced every ``BUCKET_SYNC_SECONDS``.

When the backend is unreachable the gateway is *degraded*, not down (README, "More than one
machine"): tokens still verify, revocations known before stay in force (the set is never
cleared), failed authentications and rate limits count in this process only, a new
revocation applies here at once and is written out when the backend returns (the caller
gets ``503`` meanwhile, RFC 7009 §2.2.1). Reconnects back off up to ``_MAX_BACKOFF``.
``degraded`` goes to ``/readyz`` and ``/metrics``. ``FailedAuthGuard`` is the token
endpoint's limiter (docs/architecture.md): the in-process window of
``ratelimit.FailedAuthLimiter`` for an immediate answer, with this process's checks in
flight, plus the shared counters so that all workers agree; only a failed authentication
writes to the backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from gateway.errors import InvalidClientError, RateLimitedError, ServiceUnavailableError
from gateway.observe.metrics import Metrics
from gateway.peer import address_key
from gateway.state.base import BroadcastingState, StateBackend, StateError, StateEvent
from gateway.state.ratelimit import WINDOW_SECONDS, BucketLedger, FailedAuthLimiter

__all__ = ["BUCKET_SYNC_SECONDS", "REFRESH_SECONDS", "RESYNC_SECONDS", "FailedAuthGuard",
           "SharedState"]

log = logging.getLogger(__name__)

# Half the one second a revocation may take to reach every worker, so one slow refresh still
# arrives in time.
REFRESH_SECONDS = 0.5
# Events carry revocations at once; this full read only repairs a missed one.
RESYNC_SECONDS = 2.0
# How stale a fleet-wide token bucket may be; bounds how far the fleet can overspend.
BUCKET_SYNC_SECONDS = 0.1
_FIRST_BACKOFF = 0.25
_MAX_BACKOFF = 2.0
_PRUNE_SECONDS = 60.0


class SharedState:
    """Revoked token ids and blocked addresses, in memory, following the backend."""

    def __init__(self, backend: StateBackend, metrics: Metrics | None = None) -> None:
        self.backend = backend
        # Read by TokenVerifier on every request, cache hits included; mutated in place.
        self.revoked: set[str] = set()
        self._expiry: dict[str, float] = {}
        self._blocked: dict[str, float] = {}
        self._cursor = 0
        self._failing = False
        self._metrics = metrics
        self._broadcasting = isinstance(backend, BroadcastingState)
        self._listening = not self._broadcasting
        self._resync_now = asyncio.Event()
        # Revoked here while the backend was unreachable; written out when it returns.
        self._pending: dict[str, float] = {}
        self._reassert_due = False
        self._events_lost = False
        # Per-client buckets built under ``ratelimit.shared_buckets(ledger)`` spend from
        # the fleet's budget; the embedded backend keeps them per process, as before.
        self.ledger: BucketLedger | None = BucketLedger() if self._broadcasting else None
        self._report()

    @property
    def degraded(self) -> bool:
        """True while the backend cannot be read or its events are not arriving."""
        return self._failing or not self._listening

    async def refresh(self) -> set[str]:
        """Pull what other workers wrote since the last refresh; the ids read."""
        entries, self._cursor = await self.backend.revoked_since(self._cursor)
        for jti, expires_at in entries:
            self._remember(jti, expires_at)
        self._blocked = await self.backend.blocked()
        return {jti for jti, _ in entries}

    async def run(self) -> None:
        """Follow the backend forever (a background task of the app)."""
        backend = self.backend
        if not isinstance(backend, BroadcastingState):
            await self._follow(REFRESH_SECONDS)
            return
        async with asyncio.TaskGroup() as group:
            group.create_task(self._follow(RESYNC_SECONDS))
            group.create_task(self._listen(backend))
            group.create_task(self._sync_buckets(backend))

    async def _follow(self, interval: float) -> None:
        """Refresh every ``interval`` (at once when asked), prune now and then; after a
        failure retry sooner, backing off."""
        next_prune = time.monotonic()
        backoff = _FIRST_BACKOFF
        while True:
            try:
                seen = await self.refresh()
                if self._reassert_due:
                    self._reassert_due = False
                    self._reassert(seen)
                if time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + _PRUNE_SECONDS
                    await self.backend.prune()
                    self._forget_expired()
                await self._flush_pending()
                if self._failing:
                    log.warning("shared state readable again", extra={"reason_id": "state_ok"})
                    self._failing = False
                    self._report()
                delay, backoff = interval, _FIRST_BACKOFF
            except StateError as exc:
                if not self._failing:  # once per outage, not twice a second
                    log.error("shared state unavailable: %s", exc,
                              extra={"reason_id": "state_unavailable"})
                    self._failing = True
                    self._report()
                self._count_error("resync")
                self._reassert_due = self._broadcasting
                delay, backoff = min(backoff, interval), min(backoff * 2, _MAX_BACKOFF)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._resync_now.wait(), delay)
            self._resync_now.clear()

    async def _listen(self, backend: BroadcastingState) -> None:
        backoff = _FIRST_BACKOFF
        while True:
            try:
                await backend.listen(self._apply, self._subscribed)
            except StateError as exc:
                was_listening, self._listening = self._listening, False
                self._reassert_due = self._events_lost = True
                self._report()
                self._count_error("events")
                if was_listening:
                    log.error("shared state events lost: %s", exc,
                              extra={"reason_id": "state_events_lost"})
                backoff = _FIRST_BACKOFF if was_listening else min(backoff * 2, _MAX_BACKOFF)
            await asyncio.sleep(backoff)

    def _subscribed(self) -> None:
        if self._events_lost:
            log.warning("shared state events resumed", extra={"reason_id": "state_events_ok"})
        self._listening, self._events_lost = True, False
        self._report()
        self._resync_now.set()  # what happened before the subscription: read it now

    def _apply(self, event: StateEvent) -> None:
        if event.kind == "revoked":
            self._remember(event.key, event.until)
        elif event.until > self._blocked.get(event.key, 0.0):
            self._blocked[event.key] = event.until

    async def _sync_buckets(self, backend: BroadcastingState) -> None:
        assert self.ledger is not None
        while True:
            await asyncio.sleep(BUCKET_SYNC_SECONDS)
            try:
                await self.ledger.sync(backend.spend)
            except StateError:
                self._count_error("rate_limit")  # each bucket goes on alone meanwhile

    def _reassert(self, seen: set[str]) -> None:
        """After an outage of a broadcasting backend: what this instance knows and the
        backend does not (a Redis restarted without persistence came back empty) is
        written back, so the whole fleet keeps refusing it."""
        now = time.time()
        self._pending.update({jti: exp for jti, exp in self._expiry.items()
                              if jti not in seen and exp > now})

    async def _flush_pending(self) -> None:
        for jti, expires_at in list(self._pending.items()):
            await self.backend.revoke(jti, expires_at)
            del self._pending[jti]
            log.info("revocation shared", extra={"reason_id": "revocation_shared"})

    async def revoke(self, jti: str, expires_at: float) -> None:
        """Revoke for every worker and instance: here at once, elsewhere at their next
        refresh or event. ServiceUnavailableError when the backend cannot take it now."""
        self._remember(jti, expires_at)
        try:
            await self.backend.revoke(jti, expires_at)
        except StateError as exc:
            self._pending[jti] = expires_at
            self._count_error("revoke")
            log.error("revocation kept locally until the shared state returns: %s", exc,
                      extra={"reason_id": "revocation_pending"})
            # RFC 7009 §2.2.1: 503 when "temporarily unable to revoke the token".
            raise ServiceUnavailableError(
                "The token could not be revoked everywhere yet; retry later.",
                headers={"Retry-After": "2"}) from None

    def blocked_until(self, address: str) -> float | None:
        until = self._blocked.get(address)
        return until if until is not None and until > time.time() else None

    async def record_failure(self, address: str, limit: int) -> None:
        try:
            until = await self.backend.count_failure(address, WINDOW_SECONDS, limit)
        except StateError:
            self._count_error("count_failure")
            raise
        if until is not None:
            self._blocked[address] = until

    def _remember(self, jti: str, expires_at: float) -> None:
        self.revoked.add(jti)
        self._expiry[jti] = expires_at

    def _forget_expired(self) -> None:
        now = time.time()
        for jti in [j for j, e in self._expiry.items() if e <= now]:
            self.revoked.discard(jti)
            del self._expiry[jti]

    def _report(self) -> None:
        if self._metrics is not None:
            self._metrics.state_degraded = int(self.degraded)

    def _count_error(self, operation: str) -> None:
        if self._metrics is not None:
            self._metrics.count("gateway_state_errors_total", operation)


class FailedAuthGuard:
    """The failed-authentication limit, per source address (an IPv6 address by its /64),
    across workers; checks in flight count."""

    def __init__(self, per_minute: int, shared: SharedState) -> None:
        self._limit = per_minute
        self._local = FailedAuthLimiter(per_minute)
        self._shared = shared

    @contextlib.asynccontextmanager
    async def attempt(self, address: str | None) -> AsyncIterator[None]:
        """One credential check from ``address``. Raises RateLimitedError at once while the
        address is blocked here or by another worker, or while its failures and its checks
        in flight here reach the limit. An ``InvalidClientError`` raised inside counts as a
        failure, here and in the shared state, before it propagates; anything else (a
        malformed request, a success) leaves the count as it was."""
        key = address_key(address or "")
        until = self._shared.blocked_until(key)
        if until is not None:
            raise RateLimitedError(until - time.time())
        self._local.begin(key)
        try:
            yield
        except InvalidClientError:
            self._local.end(key, failed=True)
            # The local window still limits this worker when the shared file is unavailable.
            with contextlib.suppress(StateError):
                await self._shared.record_failure(key, self._limit)
            raise
        except BaseException:
            self._local.end(key, failed=False)
            raise
        self._local.end(key, failed=False)
