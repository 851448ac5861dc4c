"""``backend_for``: the one place the spool's backend is chosen (docs/architecture.md,
"Adding a spool or state backend"). Each backend is a subpackage with a ``backend.py``
whose class implements ``base.SpoolBackend``; it is imported only when it is chosen, so a
gateway on SQLite never loads the Redis client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.spool.base import SpoolBackend

if TYPE_CHECKING:  # light to import: `gateway spool` loads it before any configuration
    from gateway.config import SpoolSettings

__all__ = ["backend_for"]


def backend_for(settings: SpoolSettings) -> SpoolBackend:
    """The backend ``settings.backend`` names."""
    if settings.backend == "redis":
        from gateway.spool.redis.backend import RedisBackend

        return RedisBackend(settings)
    from gateway.spool.sqlite.backend import SqliteBackend

    return SqliteBackend(settings)
