"""The status page's way into the spool's dead letters (docs/operations.md#the-status-page).

Everything the page reads of or does to single items passes through ``dead_letters`` and
``change``: the operations of ``gateway spool list|retry|purge`` (``spool/commands.py``) on
the configured backend's store, restricted to dead letters. An item a deliverer holds is
left alone, and nothing returned holds a header or a body (``Entry`` has neither).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from gateway.config import Settings
from gateway.spool.base import Entry
from gateway.spool.commands import spool_entries, spool_purge, spool_retry

__all__ = ["Action", "change", "dead_letters"]

Action = Literal["retry", "purge"]


async def dead_letters(settings: Settings, limit: int) -> list[Entry]:
    """The first ``limit`` dead letters, oldest first; raises SpoolError."""
    return await spool_entries(settings, dead_only=True, limit=limit)


async def change(settings: Settings, action: Action, ids: Sequence[int] | None) -> int:
    """Requeue (``retry``) or drop (``purge``) dead letters (``ids`` None: all of them);
    how many changed. Items that are not dead letters are left alone here: the page offers
    its actions on dead letters only."""
    if action == "retry":
        return await spool_retry(settings, ids, dead_only=True)
    return await spool_purge(settings, ids, dead_only=True)
