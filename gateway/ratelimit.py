"""In-process rate limits: failed client authentications per address, and token buckets.

``FailedAuthLimiter`` implements SPEC §5.1: past ``tokens.failed_auth_per_minute`` failed
authentications from one source address within a 60-second window, every token request
from that address is answered ``429`` with ``Retry-After`` (RFC 6585 §4) until the window
ends. It is checked *before* the credentials, so a blocked guesser learns nothing more.
Its interface is two methods, ``check`` and ``record_failure``, so a state shared between
workers (SQLite, Redis; SPEC §5.7) can replace it without touching the token endpoint.

``TokenBucket`` is the classic bucket (``requests_per_second`` refill, ``burst`` capacity)
for optional per-client limits (SPEC §4 ``clients[].rate_limit``).

Both keep bounded memory: a flood of distinct keys evicts the oldest entries instead of
growing without end.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from cachetools import LRUCache, TTLCache

from gateway.errors import RateLimitedError

__all__ = ["FailedAuthLimiter", "TokenBucket"]

WINDOW_SECONDS = 60.0
_MAX_KEYS = 100_000


class _Window:
    __slots__ = ("count", "start")

    def __init__(self, start: float) -> None:
        self.start = start
        self.count = 0


class FailedAuthLimiter:
    """Counts failed authentications per source address over a fixed 60 s window."""

    def __init__(
        self,
        per_minute: int,
        *,
        max_addresses: int = _MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        self._limit = per_minute
        self._clock = clock
        # The window starts at an address's first failure; TTLCache drops it when it ends.
        # Entries are mutated in place, never re-assigned, so the TTL is not extended.
        self._windows: TTLCache[str, _Window] = TTLCache(max_addresses, WINDOW_SECONDS,
                                                         timer=clock)

    def check(self, address: str | None) -> None:
        """Raise RateLimitedError if ``address`` has used up its failures for this window."""
        window = self._windows.get(address or "")
        if window is not None and window.count >= self._limit:
            retry_after = window.start + WINDOW_SECONDS - self._clock()
            raise RateLimitedError(retry_after)

    def record_failure(self, address: str | None) -> None:
        key = address or ""
        window = self._windows.get(key)
        if window is None:
            window = _Window(self._clock())
            self._windows[key] = window
        window.count += 1


class TokenBucket:
    """Per-key token buckets: ``take(key)`` is None when allowed, else seconds to wait."""

    def __init__(
        self,
        requests_per_second: float,
        burst: int,
        *,
        max_keys: int = _MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if requests_per_second <= 0 or burst < 1:
            raise ValueError("requests_per_second must be > 0 and burst >= 1")
        self._rate = float(requests_per_second)
        self._burst = float(burst)
        self._clock = clock
        # key -> [tokens left, time of last refill]; an evicted key starts full again,
        # which errs on the side of letting data through (Adobe: throttling loses data).
        self._buckets: LRUCache[str, list[float]] = LRUCache(max_keys)

    def take(self, key: str) -> float | None:
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = [self._burst, now]
            self._buckets[key] = bucket
        tokens = min(self._burst, bucket[0] + (now - bucket[1]) * self._rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return None
        bucket[0] = tokens
        return (1.0 - tokens) / self._rate
