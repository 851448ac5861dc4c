"""The spool's interface and shared types: what every backend implements (docs/operations.md).

Everything above a backend (the accept path of ``accept.Spool``, ``serve/``, ``/readyz``,
``/metrics``, the status page, ``gateway spool``) speaks ``SpoolBackend``, ``SpoolStore`` and
``SpoolDeliverer`` only; ``factory.backend_for`` picks the backend the configuration names.
The types here (``Entry``, ``RouteCounts``, ``SpoolView``) are what a store shows of itself,
whatever keeps it: never a request's headers or body.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from gateway.config import Settings
    from gateway.forward.upstream import Forwarder
    from gateway.spool.accept import Spool

__all__ = ["DeliveryRuntime", "Entry", "Readiness", "RouteCounts", "RuntimeSource",
           "SpoolBackend", "SpoolDeliverer", "SpoolError", "SpoolStore", "SpoolView"]

# /readyz's ``spool`` member and, when nothing can take a push, the reason.
Readiness = tuple[dict[str, object], str | None]


class SpoolError(Exception):
    """The spool could not be opened, read or written."""

    reason_id = "spool_unwritable"  # the log's reason when a push is refused for it
    answer = "The spool cannot store the request now; retry later."


@dataclass(frozen=True, slots=True)
class Entry:
    """What ``gateway spool list`` shows of an item: never its headers or body."""

    id: int
    route: str
    method: str
    size: int
    accepted_at: float
    attempts: int
    next_at: float
    dead: bool
    last_status: int | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class RouteCounts:
    route: str
    queued: int
    dead: int
    bytes: int
    oldest_accepted_at: float | None  # the oldest queued item's arrival


@dataclass(frozen=True, slots=True)
class SpoolView:
    """The spool at one moment."""

    routes: list[RouteCounts]
    items: int
    bytes: int
    now: float

    @property
    def depth(self) -> int:
        return sum(r.queued for r in self.routes)

    @property
    def dead_letters(self) -> int:
        return sum(r.dead for r in self.routes)

    def oldest_age(self, counts: RouteCounts | None = None) -> float:
        """Seconds since the oldest waiting request arrived (0 when none waits)."""
        chosen = [counts] if counts is not None else self.routes
        times = [r.oldest_accepted_at for r in chosen if r.oldest_accepted_at is not None]
        return max(0.0, self.now - min(times)) if times else 0.0

    def summary(self) -> dict[str, object]:
        """The totals ``/readyz`` shows."""
        return {"depth": self.depth, "dead_letters": self.dead_letters,
                "oldest_age_seconds": round(self.oldest_age(), 3), "bytes": self.bytes}


class SpoolStore(Protocol):
    """Where spooled requests are kept. Every method raises ``SpoolError`` when the store
    cannot be reached or written; ids are integers in arrival order."""

    async def add(self, route: str, method: str, query: str, fields: bytes,
                  body: bytes, *, key: str) -> int | None:
        """Store one request for ``route`` (``key``: its Idempotency-Key, in ``fields``
        too); its id, or None when ``max_items`` or ``max_bytes`` leave no room. Returns
        only once the request is durable."""

    async def view(self, *, write_probe: bool = False) -> SpoolView:
        """Counts per route; with ``write_probe``, one small write first (``/readyz``)."""

    async def entries(self, *, dead_only: bool, limit: int) -> list[Entry]:
        """What ``gateway spool list`` shows, oldest first: never headers or bodies."""

    async def requeue(self, ids: Sequence[int] | None, *, dead_only: bool = False) -> int:
        """Queue items again with fresh attempts (None: every dead letter); an item a
        deliverer holds right now is left alone, and with ``dead_only`` (the status
        page) every item that is not a dead letter too. The number requeued."""

    async def purge(self, ids: Sequence[int] | None, *, dead_only: bool = False) -> int:
        """Drop items for good (None: every dead letter), except any in delivery."""

    def counters(self) -> dict[str, int]:
        """The store's own counters for ``/metrics`` (the SQLite commits)."""

    async def close(self) -> None: ...


class DeliveryRuntime(Protocol):
    """What a deliverer needs of the serving runtime (``serve/runtime.py``): the routes,
    their forwarder, and the count that keeps a retired runtime's pools open."""

    settings: Settings
    forwarder: Forwarder
    active: int


class RuntimeSource(Protocol):
    """The slot a reload swaps the runtime in; read once per round."""

    @property
    def current(self) -> DeliveryRuntime: ...


class SpoolDeliverer(Protocol):
    """The sending half of one process, started with the app and stopped at its end."""

    async def start(self) -> None: ...

    async def stop(self, seconds: float = 5.0) -> None:
        """Stop claiming, give deliveries in flight up to ``seconds``, then end."""


class SpoolBackend(Protocol):
    """One backend as ``serve/``, the status page and ``gateway spool`` see it."""

    def where(self) -> str:
        """The store, for people: never a URL (it may hold a password)."""

    def exists(self) -> bool:
        """Whether there is a store to read; False only for a file never created (reading
        must not create it: an empty file means "in use")."""

    def open_store(self) -> SpoolStore:
        """A store for reading and operating on the spool (``gateway spool``, the pages)."""

    def open_spool(self) -> Spool:
        """The spool of a serving process: the accept path over this backend."""

    def open_deliverer(self, spool: Spool, slot: RuntimeSource) -> SpoolDeliverer:
        """The deliverer of ``spool`` (made by ``open_spool``)."""

    def startup_warnings(self) -> list[str]:
        """What the operator should hear once at start (the backend's durability)."""

    async def readiness(self) -> Readiness:
        """``/readyz``'s ``spool`` member, after one small write."""

    async def views(self) -> tuple[SpoolView, SpoolView | None]:
        """The store's view and, where the backend has one, its fallback file's."""

    async def details(self) -> dict[str, object]:
        """What ``gateway spool stats`` adds for this backend (the file, the fallback)."""
