"""The one place a Redis client is built from the configuration (docs/deploy.md).

Both Redis stores use it: the shared state (``state/redis.py``) and the spool's streams
(``spool/redis/streams.py``). ``RedisConnection`` holds redis-py's asyncio client (its pool,
timeouts, one quick retry, TLS for ``rediss://``), says where it points without the URL,
masks passwords in error texts, and keeps a short circuit breaker: after a failure, calls
that must not wait on a dead server fail at once for ``breaker_seconds``.

With ``sentinel`` in place of ``url`` the client is redis-py's Sentinel client
(``redis.asyncio.sentinel.Sentinel(...).master_for(name)``): every new connection asks the
Sentinels for the primary, and a connection to a demoted primary is dropped. ``primary``
asks them too (a store's background health check calls it every second), so an idle pool
follows a promotion at once, and the change is logged (``redis_primary_changed``) with
the old and the new address. No discovery of our own: redis-py's is the one.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError

from gateway.config import SentinelSettings

__all__ = ["RedisConnection", "RedisSettings", "describe", "tls_options"]

T = TypeVar("T")
log = logging.getLogger("gateway.redis")

_SENTINEL_TIMEOUT_SECONDS = 0.5  # per Sentinel asked; they are asked in turn
# The primary this process last logged per Sentinel service: the state's and the spool's
# connections (and each event loop's) share one, so a promotion is logged once.
_logged: dict[tuple[str, tuple[tuple[str, int], ...]], str] = {}


class RedisSettings(Protocol):
    """What a store's settings say about its Redis (``StateSettings``, ``SpoolSettings``)."""

    @property
    def url(self) -> str | None: ...

    @property
    def password(self) -> str | None: ...

    @property
    def ca_file(self) -> Path | None: ...

    @property
    def sentinel(self) -> SentinelSettings | None: ...


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
        self._make_error = error
        self._breaker_seconds = breaker_seconds
        self._down_until = 0.0
        common: dict[str, Any] = {
            "decode_responses": decode_responses, "socket_connect_timeout": connect_timeout,
            "socket_timeout": socket_timeout, "max_connections": max_connections,
            "health_check_interval": 5, "client_name": name,
            # One quick retry: a pooled connection broken by a Redis restart is replaced.
            "retry": Retry(ExponentialBackoff(cap=0.1, base=0.02), 1)}
        self._sentinel_settings = settings.sentinel
        self._sentinel: Sentinel | None = None
        self.primary_address: str | None = None  # host:port, once known
        if settings.sentinel is not None:
            found = settings.sentinel
            self._secrets = [s for s in (found.password, found.sentinel_password) if s]
            tls = _sentinel_tls(found.ca_file)
            self._sentinel = Sentinel(
                list(found.nodes), sentinel_kwargs={
                    "password": found.sentinel_password,
                    "socket_timeout": _SENTINEL_TIMEOUT_SECONDS,
                    "socket_connect_timeout": _SENTINEL_TIMEOUT_SECONDS, **tls})
            self.client: redis.Redis = self._sentinel.master_for(
                found.master_name, username=found.username, password=found.password,
                db=found.db, **common, **tls)
            return
        assert settings.url is not None  # the loader requires url or sentinel
        parts = urlsplit(settings.url)
        self.primary_address = f"{parts.hostname}:{parts.port or 6379}"
        self._secrets = [s for s in (settings.password, parts.password) if s]
        self.client = redis.Redis.from_url(
            settings.url, password=settings.password, **common,
            **tls_options(settings.url, settings.ca_file))

    @property
    def where(self) -> str:
        """``redis host:port`` or ``redis sentinel NAME (primary host:port)``: for people,
        never a URL or a password."""
        if self._sentinel_settings is None:
            return f"redis {self.primary_address}"
        return (f"redis sentinel {self._sentinel_settings.master_name} "
                f"(primary {self.primary_address or 'unknown'})")

    async def primary(self) -> str | None:
        """The primary's ``host:port``, asked of the Sentinels now (the URL's without
        them); a change is logged once and the pool's idle connections to the old one are
        dropped (redis-py's ``get_master_address``). None when no Sentinel names one."""
        if self._sentinel is None:
            return self.primary_address
        pool = self.client.connection_pool
        assert isinstance(pool, SentinelConnectionPool)
        try:
            async with asyncio.timeout(_SENTINEL_TIMEOUT_SECONDS * 2):
                host, port = await pool.get_master_address()  # type: ignore[no-untyped-call]
        except (RedisError, OSError, TimeoutError):
            return None
        now = f"{host}:{port}"
        self.primary_address = now
        assert self._sentinel_settings is not None
        service = (self._sentinel_settings.master_name, self._sentinel_settings.nodes)
        before = _logged.get(service)
        if now != before:
            _logged[service] = now
            if before is not None:
                log.warning("redis primary changed reason_id=redis_primary_changed "
                            "service=%r old=%r new=%r", service[0], before, now,
                            extra={"reason_id": "redis_primary_changed"})
            else:
                log.info("redis primary found reason_id=redis_primary service=%r primary=%r",
                         service[0], now, extra={"reason_id": "redis_primary"})
        return now

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
            if self._sentinel is not None:
                await self._sentinel.aclose()
        except (RedisError, OSError):
            return


def _sentinel_tls(ca_file: Path | None) -> dict[str, Any]:
    """redis-py's TLS arguments when a Sentinel block has ``ca_file``: TLS 1.2+, verified."""
    if ca_file is None:
        return {}
    return {"ssl": True, "ssl_cert_reqs": "required", "ssl_check_hostname": True,
            "ssl_min_version": ssl.TLSVersion.TLSv1_2, "ssl_ca_certs": str(ca_file)}
