"""The shared state's interface (docs/configuration.md ``state``): what a backend implements.

``StateBackend`` is five coroutines, each one round trip, so the embedded SQLite file
(``sqlite.py``) and Redis (``redis.py``) fit it without touching the stages. A backend several
machines share is also a ``BroadcastingState``: it pushes other instances' revocations and
blocks as they happen (``StateEvent``) and holds the fleet's token buckets. The request
path never queries a backend: ``mirror.SharedState`` keeps what it needs in memory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, NamedTuple, Protocol, runtime_checkable

__all__ = ["BroadcastingState", "StateBackend", "StateError", "StateEvent"]


class StateError(Exception):
    """The shared state could not be read or written (disk, lock timeout)."""


class StateBackend(Protocol):
    async def revoke(self, jti: str, expires_at: float) -> None:
        """Remember ``jti`` as revoked until ``expires_at`` (epoch seconds)."""

    async def revoked_since(self, cursor: int) -> tuple[list[tuple[str, float]], int]:
        """Revocations after ``cursor`` (0 = all unexpired) and the new cursor."""

    async def count_failure(self, address: str, window: float, limit: int) -> float | None:
        """Count one failed authentication of ``address`` in its ``window``-second window;
        the time the address stays blocked until, once the count reaches ``limit``."""

    async def blocked(self) -> dict[str, float]:
        """Every address blocked now, with the time its block ends."""

    async def prune(self) -> None:
        """Forget expired revocations and finished windows (called now and then)."""

    async def close(self) -> None: ...


class StateEvent(NamedTuple):
    """What another instance just did: revoked token ``key`` or blocked address ``key``,
    until ``until`` (epoch seconds)."""

    kind: Literal["revoked", "blocked"]
    key: str
    until: float


@runtime_checkable
class BroadcastingState(StateBackend, Protocol):
    """A backend several machines share: it pushes events, so nobody polls it twice a
    second, and it holds the fleet's token buckets."""

    async def listen(self, on_event: Callable[[StateEvent], None],
                     on_subscribed: Callable[[], None]) -> None:
        """Deliver every instance's events until the connection breaks (StateError);
        ``on_subscribed`` runs once nothing can be missed any more, so a resync made
        after it sees everything the subscription does not."""

    async def spend(self, key: str, rate: float, burst: int, spent: int) -> float:
        """Take ``spent`` tokens from the shared bucket ``key`` (refilled at ``rate`` per
        second up to ``burst``); the tokens left, negative when the fleet overspent."""
