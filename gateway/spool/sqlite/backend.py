"""``spool.backend: sqlite``: the queue in one local SQLite file per machine
(docs/operations.md); ``SqliteBackend`` is this backend's ``base.SpoolBackend``.

The only spool condition that makes ``/readyz`` fail is a file that cannot be written.
"""

from __future__ import annotations

import sqlite3

from gateway.config import SpoolSettings
from gateway.spool.accept import Spool
from gateway.spool.base import Readiness, RuntimeSource, SpoolDeliverer, SpoolStore, SpoolView
from gateway.spool.sqlite.reader import reader_for
from gateway.spool.sqlite.store import SqliteStore
from gateway.spool.sqlite.thread import DeliveryThread
from gateway.spool.sqlite.writer import SpoolWriter

__all__ = ["SqliteBackend"]


class SqliteBackend:
    """The spool file ``settings.path``."""

    def __init__(self, settings: SpoolSettings) -> None:
        self.settings = settings

    def where(self) -> str:
        return str(self.settings.path)

    def exists(self) -> bool:
        return self.settings.path.exists()

    def open_store(self) -> SpoolStore:
        return SqliteStore(self.settings, None)

    def open_spool(self) -> Spool:
        # The writer's thread starts now; the file is opened at the first write.
        return Spool(self.settings, SqliteStore(self.settings, SpoolWriter(self.settings.path)))

    def open_deliverer(self, spool: Spool, slot: RuntimeSource) -> SpoolDeliverer:
        # A loop of its own: sqlite/thread.py says why.
        return DeliveryThread(spool, slot, self.settings)

    def startup_warnings(self) -> list[str]:
        return []

    async def readiness(self) -> Readiness:
        path = self.settings.path
        try:
            view = await reader_for(path).view(write_probe=True)
        except (sqlite3.Error, OSError) as exc:
            return {"path": str(path)}, f"spool: cannot write {path}: {exc.__class__.__name__}"
        return {"path": str(path), **view.summary()}, None

    async def views(self) -> tuple[SpoolView, SpoolView | None]:
        return await self.open_store().view(), None

    async def details(self) -> dict[str, object]:
        return {"path": str(self.settings.path)}
