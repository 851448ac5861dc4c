"""The public listener's connection bounds: deadlines, and the cap on live connections with
oldest-idle eviction (used by ``guards``)."""

from __future__ import annotations

import logging
import resource
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

__all__ = ["DEFAULT_LIMITS", "Connection", "ConnectionLimits", "Registry",
           "default_max_connections"]

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
    handshake_seconds: float = 10.0
    max_connections: int = 4096

    def __post_init__(self) -> None:
        if min(self.header_seconds, self.body_seconds, self.handshake_seconds) <= 0 \
                or self.max_connections < 1:
            raise ValueError("connection limits must be positive")


DEFAULT_LIMITS = ConnectionLimits(max_connections=default_max_connections())


class Registry:
    """The live connections of one listener process, oldest first."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.live: OrderedDict[Connection, None] = OrderedDict()

    def admit(self, handler: Connection) -> bool:
        if len(self.live) >= self.limits.max_connections:
            # Bounded: one pass over at most max_connections entries.
            idle = next((h for h in self.live if h.is_idle()), None)
            if idle is None:
                return False
            log.info("idle connection closed for a new one", extra={"reason_id": "evict_idle"})
            idle.force_close()
            self.live.pop(idle, None)
        self.live[handler] = None
        return True

    def release(self, handler: Connection) -> None:
        self.live.pop(handler, None)
