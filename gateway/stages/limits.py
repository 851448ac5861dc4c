"""Stage 4 of ``pipeline``: per-client source addresses and rate limit
(docs/configuration.md ``allowed_cidrs``, ``rate_limit``).

Both are off by default: IRIS calls from dynamic cloud addresses, and Adobe warns that a
receiver that throttles loses data. A partner who turns them on gets ``403`` and ``429``.
"""

from __future__ import annotations

import ipaddress

from gateway.config import ClientSettings
from gateway.errors import ForbiddenError, RateLimitedError
from gateway.state.ratelimit import TokenBucket

__all__ = ["ClientLimits"]


class ClientLimits:
    """The limits of every configured client, built once per configuration."""

    def __init__(self, clients: tuple[ClientSettings, ...]) -> None:
        self._cidrs = {c.client_id: c.allowed_cidrs for c in clients if c.allowed_cidrs}
        self._buckets = {
            c.client_id: TokenBucket(c.rate_limit.requests_per_second, c.rate_limit.burst)
            for c in clients if c.rate_limit is not None
        }

    @property
    def active(self) -> bool:
        """Whether any client has a limit; when none has, the stage is skipped."""
        return bool(self._cidrs or self._buckets)

    def check(self, client_id: str, address: str) -> None:
        """Raise ``ForbiddenError`` (403) when ``address`` is outside the client's
        ``allowed_cidrs``, ``RateLimitedError`` (429) when its bucket is empty."""
        networks = self._cidrs.get(client_id)
        if networks is not None:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                raise ForbiddenError() from None
            if not any(ip in network for network in networks):
                raise ForbiddenError()
        bucket = self._buckets.get(client_id)
        if bucket is not None:
            retry_after = bucket.take(client_id)
            if retry_after is not None:
                raise RateLimitedError(retry_after)
