"""The public listener's connection bounds: deadlines, the cap on live connections and the
cap per source address, both with oldest-idle eviction (used by ``guards``).

A new connection past a cap first makes room by closing the oldest *idle* keep-alive
connection (past the per-address cap: the oldest idle one of that same address), and is
refused only when none is idle: closed before its TLS handshake (``acceptor.py``, which
counts handshakes in progress too), or ``503`` on a plain listener. The per-address cap
keeps one source from taking every slot; an IPv6 source counts by its /64
(``peer.address_key``), and a trusted proxy (``server.trusted_proxies``), which carries
everyone's connections, is not capped by it.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from gateway.config.yamlpath import Network
from gateway.peer import address_key, is_trusted_proxy

__all__ = ["DEFAULT_LIMITS", "Connection", "ConnectionLimits", "GuardedTCPSite", "Registry",
           "default_max_connections", "warn_if_few_files"]

log = logging.getLogger("gateway.guards")


class Connection(Protocol):
    """What the registry needs of a connection's protocol handler."""

    def is_idle(self) -> bool: ...

    def force_close(self) -> None: ...


def default_max_connections(ceiling: int = 4096) -> int:
    """``ceiling``, or fewer when the open-files limit is low: each client connection may
    hold a backend connection too, and the process needs a margin for its own files."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return ceiling
    return max(16, min(ceiling, (soft - 64) // 2))


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionLimits:
    header_seconds: float = 10.0
    body_seconds: float = 60.0
    handshake_seconds: float = 5.0
    max_connections: int = 4096
    max_connections_per_address: int = 256  # server.max_connections_per_address

    def __post_init__(self) -> None:
        if min(self.header_seconds, self.body_seconds, self.handshake_seconds) <= 0 \
                or self.max_connections < 1 or self.max_connections_per_address < 1:
            raise ValueError("connection limits must be positive")


DEFAULT_LIMITS = ConnectionLimits(max_connections=default_max_connections())


class Registry:
    """The live connections of one listener process, oldest first, and per source."""

    def __init__(self, limits: ConnectionLimits, trusted: tuple[Network, ...] = ()) -> None:
        self.limits = limits
        self.live: OrderedDict[Connection, str] = OrderedDict()
        self._by_source: dict[str, OrderedDict[Connection, None]] = {}
        self._trusted = trusted

    def admit(self, handler: Connection, address: str) -> bool:
        source = "" if is_trusted_proxy(address, self._trusted) else address_key(address)
        mine = self._by_source.get(source) if source else None
        if (mine is not None and len(mine) >= self.limits.max_connections_per_address
                and not self._evict_idle(mine, "max_connections_per_address")):
            return False
        if (len(self.live) >= self.limits.max_connections
                and not self._evict_idle(self.live, "max_connections")):
            return False
        self.live[handler] = source
        if source:
            self._by_source.setdefault(source, OrderedDict())[handler] = None
        return True

    def _evict_idle(self, oldest_first: Iterable[Connection], cap: str) -> bool:
        # Bounded: one pass over at most the cap's number of entries.
        idle = next((h for h in oldest_first if h.is_idle()), None)
        if idle is None:
            return False
        log.info("idle connection closed for a new one",
                 extra={"reason_id": "evict_idle", "cap": cap})
        idle.force_close()
        self.release(idle)
        return True

    def release(self, handler: Connection) -> None:
        source = self.live.pop(handler, "")
        mine = self._by_source.get(source)
        if mine is not None:
            mine.pop(handler, None)
            if not mine:
                del self._by_source[source]


class GuardedTCPSite(web.TCPSite):
    """``web.TCPSite`` whose TLS connections are accepted by ``acceptor.Acceptor``: each
    counts against the runner's connection caps from its handshake on, and each handshake
    is bounded to ``handshake_seconds`` (asyncio's default is 60 s)."""

    __slots__ = ()

    async def start(self) -> None:
        # TCPSite.start without its create_server call, which cannot see a handshake.
        await web.BaseSite.start(self)
        runner = self._runner
        # A guards.GuardedAppRunner has its own limits; any other runner the defaults.
        limits = getattr(runner, "limits", DEFAULT_LIMITS)
        server = runner.server
        assert server is not None
        registry = getattr(server, "registry", None)
        warn_if_few_files(limits)
        if self._ssl_context is None or not isinstance(registry, Registry):
            plain = await asyncio.get_running_loop().create_server(
                server, self._host, self._port, ssl=self._ssl_context, backlog=self._backlog,
                reuse_address=self._reuse_address, reuse_port=self._reuse_port,
                ssl_handshake_timeout=limits.handshake_seconds if self._ssl_context else None)
            self._server, sockets = plain, list(plain.sockets)
        else:
            from gateway.serve.acceptor import Acceptor, listening_sockets

            sockets = listening_sockets(self._host or "", self._port, backlog=self._backlog,
                                        reuse_address=self._reuse_address,
                                        reuse_port=self._reuse_port)
            self._server = Acceptor(  # type: ignore[assignment]  # close() and sockets
                sockets, server, self._ssl_context, registry)
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port


_warned = False


def warn_if_few_files(limits: ConnectionLimits) -> None:
    """Say once per process when the open-file limit holds the connection cap below its
    usual 4,096 (docs/operations.md, "Open files")."""
    global _warned
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if _warned or soft == resource.RLIM_INFINITY or default_max_connections() >= 4096:
        return
    _warned = True
    log.warning("open-file limit %d holds this process to %d connections; raise it "
                "(LimitNOFILE) for more", soft, limits.max_connections,
                extra={"reason_id": "low_open_file_limit", "nofile": soft,
                       "max_connections": limits.max_connections})
