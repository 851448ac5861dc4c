"""``open_state``: the one place the shared state's backend is chosen (docs/configuration.md
``state``). Adding a backend is a module of its own plus one entry here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.state.base import StateBackend

if TYPE_CHECKING:
    from gateway.config import StateSettings

__all__ = ["open_state"]


def open_state(settings: StateSettings) -> StateBackend:
    """The backend ``settings`` names; nothing connects until the first call."""
    if settings.backend == "redis":
        # Imported here: a gateway on SQLite never loads the Redis client.
        from gateway.state.redis import RedisState

        return RedisState(settings)
    from gateway.state.sqlite import SQLiteState

    return SQLiteState(settings.path)
