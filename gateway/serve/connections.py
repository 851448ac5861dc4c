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

import logging
import resource
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from gateway.config.yamlpath import Network
from gateway.peer import address_key, is_trusted_proxy

__all__ = ["DEFAULT_LIMITS", "Connection", "ConnectionLimits", "Registry",
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
