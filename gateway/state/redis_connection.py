"""The one place a Redis client is built from the configuration (docs/deploy.md).

Both Redis stores use it: the shared state (``state/redis.py``) and the spool's streams
(``spool/redis/streams.py``). ``RedisConnection`` holds redis-py's asyncio client (its pool,
timeouts, one quick retry, TLS for ``rediss://``), says where it points without the URL,
masks passwords in error texts, and keeps a short circuit breaker: after a failure, calls
that must not wait on a dead server fail at once for ``breaker_seconds``. Sentinel and any
other way to find the server belong here too, so that neither store builds a client.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError

__all__ = ["RedisConnection", "RedisSettings", "describe", "tls_options"]

T = TypeVar("T")


class RedisSettings(Protocol):
    """What a store's settings say about its Redis (``StateSettings``, ``SpoolSettings``)."""

    @property
    def url(self) -> str | None: ...

    @property
    def password(self) -> str | None: ...

    @property
    def ca_file(self) -> Path | None: ...


def describe(url: str | None) -> str:
    """``redis host:port``: the server for people, never the URL (it may hold a password)."""
    parts = urlsplit(url or "")
    return f"redis {parts.hostname}:{parts.port or 6379}"


def tls_options(url: str | None, ca_file: Path | None) -> dict[str, Any]:
    """redis-py's TLS arguments for ``url``: for ``rediss://``, a verified TLS 1.2+ server
    (against ``ca_file``, or the system CAs); nothing for ``redis://``."""
    if urlsplit(url or "").scheme != "rediss":
        return {}
    return {"ssl_cert_reqs": "required", "ssl_check_hostname": True,
            "ssl_min_version": ssl.TLSVersion.TLSv1_2,
            "ssl_ca_certs": str(ca_file) if ca_file else None}


class RedisConnection:
    """One client of one Redis primary; ``error`` makes the store's own exception
    (``StateError``, ``SpoolError``) from a masked message."""

    def __init__(self, settings: RedisSettings, *, name: str, error: Callable[[str], Exception],
                 decode_responses: bool, socket_timeout: float, max_connections: int,
                 connect_timeout: float = 1.0, breaker_seconds: float = 1.0) -> None:
        assert settings.url is not None  # the loader requires it for a Redis backend
        parts = urlsplit(settings.url)
        self.where = describe(settings.url)
        self._secrets = [s for s in (settings.password, parts.password) if s]
        self._make_error = error
        self._breaker_seconds = breaker_seconds
        self._down_until = 0.0
        self.client: redis.Redis = redis.Redis.from_url(
            settings.url, password=settings.password, decode_responses=decode_responses,
            socket_connect_timeout=connect_timeout, socket_timeout=socket_timeout,
            max_connections=max_connections, health_check_interval=5,
            # One quick retry: a pooled connection broken by a Redis restart is replaced.
            retry=Retry(ExponentialBackoff(cap=0.1, base=0.02), 1),
            client_name=name, **tls_options(settings.url, settings.ca_file))

    def mask(self, text: str) -> str:
        """``text`` without any password of this connection."""
        for secret in self._secrets:  # SECURITY: never a password in a log line
            text = text.replace(secret, "***")
        return text

    def error(self, exc: BaseException) -> Exception:
        """The store's error for ``exc``: the host and the exception, masked."""
        return self._make_error(f"{self.where}: {self.mask(f'{exc.__class__.__name__}: {exc}')}")

    async def call(self, work: Callable[[], Awaitable[T]], *, fail_fast: bool = False) -> T:
        """Run ``work``; a Redis or socket error trips the breaker and becomes the store's
        error. With ``fail_fast``, fail at once while the breaker is open."""
        if fail_fast and not self.usable():
            raise self._make_error(f"{self.where}: unreachable a moment ago; "
                                   "retrying in background")
        try:
            result = await work()
        except (RedisError, OSError) as exc:
            self.trip()
            raise self.error(exc) from None
        self._down_until = 0.0
        return result

    def usable(self) -> bool:
        """False for a moment after a failure: callers do not wait on a dead server."""
        return time.monotonic() >= self._down_until

    def trip(self) -> None:
        """Open the breaker, as a failure does (a timeout the caller enforced)."""
        self._down_until = time.monotonic() + self._breaker_seconds

    async def close(self) -> None:
        # Closing after an outage: the pool's sockets are dead already.
        try:
            await self.client.aclose()
        except (RedisError, OSError):
            return
