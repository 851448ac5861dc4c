"""The spool's two backends behind one interface (docs/operations.md, docs/deploy.md).

``spool.backend: sqlite`` keeps the queue in a local SQLite file (``local.SqliteStore``,
delivered by ``deliverer.Deliverer``); ``spool.backend: redis`` keeps it in Redis Streams
shared by the fleet (``stream_fallback.FallbackStore`` over ``stream.StreamStore``,
delivered by ``stream_deliverer.StreamDeliverer``), with the local file as the fallback
while Redis cannot take a push. Everything above the spool (the accept path of
``writer.Spool``, ``/readyz``, ``/metrics``, ``gateway spool``) speaks ``SpoolStore``; the
choice between the two is made here, once, and Redis is imported only when it is chosen.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from gateway.config import SpoolSettings
    from gateway.spool.deliverer import RuntimeSource
    from gateway.spool.status import SpoolView
    from gateway.spool.store import Entry
    from gateway.spool.writer import Spool

__all__ = ["SpoolDeliverer", "SpoolError", "SpoolStore", "open_deliverer", "open_spool",
           "open_store", "where"]


class SpoolError(Exception):
    """The spool could not be opened, read or written (``writer`` re-exports it)."""

    reason_id = "spool_unwritable"  # the log's reason when a push is refused for it
    answer = "The spool cannot store the request now; retry later."


class SpoolStore(Protocol):
    """Where spooled requests are kept. Every method raises ``writer.SpoolError`` when the
    store cannot be reached or written; ids are integers in arrival order on both."""

    async def add(self, route: str, method: str, query: str, fields: bytes,
                  body: bytes) -> int | None:
        """Store one request for ``route``; its id, or None when ``max_items`` or
        ``max_bytes`` leave no room. Returns only once the request is durable."""

    async def view(self, *, write_probe: bool = False) -> SpoolView:
        """Counts per route; with ``write_probe``, one small write first (``/readyz``)."""

    async def entries(self, *, dead_only: bool, limit: int) -> list[Entry]:
        """What ``gateway spool list`` shows, oldest first: never headers or bodies."""

    async def requeue(self, ids: Sequence[int] | None) -> int:
        """Queue items again with fresh attempts (None: every dead letter); an item a
        deliverer holds right now is left alone. The number requeued."""

    async def purge(self, ids: Sequence[int] | None) -> int:
        """Drop items for good (None: every dead letter), except any in delivery."""

    async def close(self) -> None: ...


class SpoolDeliverer(Protocol):
    """The sending half of one process: runs until stopped."""

    async def run(self) -> None: ...

    async def stop(self, seconds: float = 5.0) -> None: ...


def where(settings: SpoolSettings) -> str:
    """The store, for people: the file, or the Redis host and key prefix (never the URL,
    which may hold a password)."""
    if settings.backend == "sqlite":
        return str(settings.path)
    from urllib.parse import urlsplit

    parts = urlsplit(settings.url or "")
    return f"redis {parts.hostname}:{parts.port or 6379} {settings.key_prefix}spool:*"


def open_store(settings: SpoolSettings) -> SpoolStore:
    """A store for reading and operating on the spool (``gateway spool``, ``/readyz``):
    the file itself, or the streams."""
    if settings.backend == "redis":
        from gateway.spool.stream import StreamStore

        return StreamStore(settings)
    from gateway.spool.local import SqliteStore

    return SqliteStore(settings, None)


def open_spool(settings: SpoolSettings) -> Spool:
    """The spool of a serving process: the accept path over the configured backend."""
    from gateway.spool.writer import Spool

    spool = Spool(settings)
    if settings.backend == "redis":
        from gateway.spool.stream import StreamStore
        from gateway.spool.stream_fallback import FallbackStore

        spool.store = FallbackStore(StreamStore(settings), spool)
    return spool


def open_deliverer(spool: Spool, slot: RuntimeSource) -> SpoolDeliverer:
    """The deliverer of the spool's backend."""
    if spool.settings.backend == "redis":
        from gateway.spool.stream_deliverer import StreamDeliverer
        from gateway.spool.stream_fallback import FallbackStore

        assert isinstance(spool.store, FallbackStore)  # open_spool made it
        return StreamDeliverer(spool, spool.store, slot)
    from gateway.spool.deliverer import Deliverer

    return Deliverer(spool, slot, spool.settings)
