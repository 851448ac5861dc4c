"""The request path's view of the shared state (SPEC §5.1, §5.7), kept in memory.

``SharedState`` mirrors the backend's revoked token ids and blocked addresses in a ``set``
and a ``dict``, refreshed by one background task every ``REFRESH_SECONDS``: a bearer request
costs one set lookup, never a database query, and a revocation made by any worker reaches
every other within a second (SPEC §5.1). ``FailedAuthGuard`` is the token endpoint's limiter
(SPEC §5.1): the in-process window of ``ratelimit.FailedAuthLimiter`` for an immediate
answer, plus the shared counters so that all workers agree; only a failed authentication
writes to the backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from gateway.errors import RateLimitedError
from gateway.ratelimit import WINDOW_SECONDS, FailedAuthLimiter
from gateway.state import StateBackend, StateError

__all__ = ["REFRESH_SECONDS", "FailedAuthGuard", "SharedState"]

log = logging.getLogger(__name__)

# Half the one second SPEC §5.1 allows, so one slow refresh still arrives in time.
REFRESH_SECONDS = 0.5
_PRUNE_SECONDS = 60.0


class SharedState:
    """Revoked token ids and blocked addresses, in memory, following the backend."""

    def __init__(self, backend: StateBackend) -> None:
        self.backend = backend
        # Read by TokenVerifier on every request, cache hits included; mutated in place.
        self.revoked: set[str] = set()
        self._expiry: dict[str, float] = {}
        self._blocked: dict[str, float] = {}
        self._cursor = 0
        self._failing = False

    async def refresh(self) -> None:
        """Pull what other workers wrote since the last refresh."""
        entries, self._cursor = await self.backend.revoked_since(self._cursor)
        for jti, expires_at in entries:
            self._remember(jti, expires_at)
        self._blocked = await self.backend.blocked()

    async def run(self) -> None:
        """Refresh forever (a background task of the app); prune now and then."""
        next_prune = time.monotonic()
        while True:
            try:
                await self.refresh()
                if time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + _PRUNE_SECONDS
                    await self.backend.prune()
                    self._forget_expired()
                if self._failing:
                    log.warning("shared state readable again", extra={"reason_id": "state_ok"})
                self._failing = False
            except StateError as exc:
                if not self._failing:  # once per outage, not twice a second
                    log.error("shared state unavailable: %s", exc,
                              extra={"reason_id": "state_unavailable"})
                self._failing = True
            await asyncio.sleep(REFRESH_SECONDS)

    async def revoke(self, jti: str, expires_at: float) -> None:
        """Revoke for every worker; effective here at once, elsewhere at their refresh."""
        await self.backend.revoke(jti, expires_at)
        self._remember(jti, expires_at)

    def blocked_until(self, address: str) -> float | None:
        until = self._blocked.get(address)
        return until if until is not None and until > time.time() else None

    async def record_failure(self, address: str, limit: int) -> None:
        until = await self.backend.count_failure(address, WINDOW_SECONDS, limit)
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


class FailedAuthGuard:
    """SPEC §5.1's failed-authentication limit, per source address, across workers."""

    def __init__(self, per_minute: int, shared: SharedState) -> None:
        self._limit = per_minute
        self._local = FailedAuthLimiter(per_minute)
        self._shared = shared

    def check(self, address: str | None) -> None:
        """Raise RateLimitedError while ``address`` is blocked here or by another worker."""
        self._local.check(address)
        until = self._shared.blocked_until(address or "")
        if until is not None:
            raise RateLimitedError(until - time.time())

    async def record_failure(self, address: str | None) -> None:
        self._local.record_failure(address)
        # The local window still limits this worker when the shared file is unavailable.
        with contextlib.suppress(StateError):
            await self._shared.record_failure(address or "", self._limit)
