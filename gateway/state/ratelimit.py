"""In-process rate limits: failed client authentications per address, and token buckets.

``FailedAuthLimiter`` is the token endpoint's guard: past ``tokens.failed_auth_per_minute`` failed
authentications from one source address within a 60-second window, every token request
from that address is answered ``429`` with ``Retry-After`` (RFC 6585 §4) until the window
ends. Checks still in flight count as failures until they end (``begin`` … ``end``), so N
requests held back at once get at most the limit's worth of credential checks, not N. It
is consulted *before* the credentials, so a blocked guesser learns nothing more.
``state/mirror.py`` (``FailedAuthGuard``) adds the count that workers share.

``TokenBucket`` is the classic bucket (``requests_per_second`` refill, ``burst`` capacity)
for optional per-client limits (docs/configuration.md ``clients[].rate_limit``). Built inside
``shared_buckets(ledger)``, it also reports what it spent to a ``BucketLedger`` that syncs
it with the fleet's bucket in Redis (docs/deploy.md), while ``take`` still answers from memory.

Both keep bounded memory: a flood of distinct keys evicts the oldest entries instead of
growing without end.
"""

from __future__ import annotations

import contextlib
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar

from cachetools import LRUCache, TTLCache

from gateway.errors import RateLimitedError

__all__ = ["BucketLedger", "FailedAuthLimiter", "TokenBucket", "shared_buckets"]

# (key, requests per second, burst, tokens spent here) -> tokens the fleet has left.
Spend = Callable[[str, float, int, int], Awaitable[float]]

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

        # Credential checks begun and not yet ended, per address; an entry leaves at zero,
        # so this holds at most one entry per request in flight.
        self._in_flight: dict[str, int] = {}

    def check(self, address: str | None) -> None:
        """Raise RateLimitedError if ``address`` has used up its failures for this window,
        counting its checks in flight as failures."""
        key = address or ""
        window = self._windows.get(key)
        used = (window.count if window is not None else 0) + self._in_flight.get(key, 0)
        if used >= self._limit:
            # A window ends at a known time; checks in flight end within a request's
            # deadlines, so a second is the honest hint.
            retry_after = (window.start + WINDOW_SECONDS - self._clock()
                           if window is not None and window.count >= self._limit else 1.0)
            raise RateLimitedError(retry_after)

    def begin(self, address: str | None) -> None:
        """Start one credential check of ``address``; raises RateLimitedError as ``check``.
        Every ``begin`` that returns must be paired with one ``end``."""
        self.check(address)
        key = address or ""
        self._in_flight[key] = self._in_flight.get(key, 0) + 1

    def end(self, address: str | None, *, failed: bool) -> None:
        """End a check begun with ``begin``; a failure counts in the window."""
        key = address or ""
        left = self._in_flight.get(key, 0) - 1
        if left > 0:
            self._in_flight[key] = left
        else:
            self._in_flight.pop(key, None)
        if failed:
            self.record_failure(key)

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
        # Tokens taken per key since the last sync with the fleet; None when not shared.
        self._spent: dict[str, int] | None = None
        ledger = _LEDGER.get()
        if ledger is not None:
            self._spent = {}
            ledger.adopt(self)

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
            if self._spent is not None:
                self._spent[key] = self._spent.get(key, 0) + 1
            return None
        bucket[0] = tokens
        return (1.0 - tokens) / self._rate

    async def sync(self, spend: Spend) -> None:
        """Hand what this process spent to the fleet's buckets and take on what they have
        left. On a failure the spent tokens are dropped, not carried over: the outage's
        traffic is forgiven rather than charged at once when the backend returns."""
        if self._spent is None:
            return
        for key in list(self._buckets.keys()):
            left = await spend(key, self._rate, int(self._burst), self._spent.pop(key, 0))
            bucket = self._buckets.get(key)
            if bucket is not None:
                # Takes made during the round trip wait in _spent for the next sync.
                bucket[0] = min(self._burst, left) - self._spent.get(key, 0)
                bucket[1] = self._clock()


_LEDGER: ContextVar[BucketLedger | None] = ContextVar("gateway_bucket_ledger", default=None)


@contextlib.contextmanager
def shared_buckets(ledger: BucketLedger | None) -> Iterator[None]:
    """Every TokenBucket built in this block reports to ``ledger`` (None: stays local).
    A context, not an argument, so the stages build their buckets unchanged."""
    token = _LEDGER.set(ledger)
    try:
        yield
    finally:
        _LEDGER.reset(token)


class BucketLedger:
    """The token buckets of one process whose budget the fleet shares (docs/deploy.md).

    ``sync`` (every ~0.1 s, ``mirror.py``) charges each bucket's spending to the shared
    bucket and sets the local level to what the fleet has left. Between two syncs each
    instance spends from its last view, so the fleet may briefly overspend (the trade Kong's
    ``sync_rate`` makes); the shared debt then holds every instance back until repaid.
    Without the backend each bucket goes on alone: every instance allows the full rate."""

    def __init__(self) -> None:
        # Weak: the buckets of a retired configuration go with it.
        self._buckets: weakref.WeakSet[TokenBucket] = weakref.WeakSet()

    def adopt(self, bucket: TokenBucket) -> None:
        self._buckets.add(bucket)

    async def sync(self, spend: Spend) -> None:
        for bucket in list(self._buckets):
            await bucket.sync(spend)
