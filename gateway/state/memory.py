"""``MemoryState``: the ``StateBackend`` contract for one process, without a file (unit
tests, and an app built without a runtime: ``serve/oauth_routes.py``).
"""

from __future__ import annotations

import time

__all__ = ["MemoryState"]


class MemoryState:
    """``StateBackend`` for a single process, without a file."""

    def __init__(self) -> None:
        self._revoked: list[tuple[str, float]] = []
        self._windows: dict[str, tuple[float, int, float]] = {}

    async def revoke(self, jti: str, expires_at: float) -> None:
        self._revoked.append((jti, expires_at))

    async def revoked_since(self, cursor: int) -> tuple[list[tuple[str, float]], int]:
        now = time.time()
        fresh = [(j, e) for j, e in self._revoked[cursor:] if e > now]
        return fresh, len(self._revoked)

    async def count_failure(self, address: str, window: float, limit: int) -> float | None:
        now = time.time()
        end, count, blocked = self._windows.get(address, (0.0, 0, 0.0))
        if end <= now:
            end, count, blocked = now + window, 0, 0.0
        count += 1
        if count >= limit:
            blocked = end
        self._windows[address] = (end, count, blocked)
        return blocked or None

    async def blocked(self) -> dict[str, float]:
        now = time.time()
        return {a: b for a, (_, _, b) in self._windows.items() if b > now}

    async def prune(self) -> None:
        now = time.time()
        self._windows = {a: w for a, w in self._windows.items() if w[0] > now}

    async def close(self) -> None:
        return None
