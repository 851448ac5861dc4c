"""What a process knows of its Redis spool now, refreshed in the background (docs/operations.md,
"Redis outages"; docs/deploy.md section 6).

One ``Health`` per ``StreamStore``: every second (``run``) it asks the Sentinels for the
primary (``RedisConnection.primary``: a promotion is followed and logged there), probes a
write, reads the streams' counts and, with ``min_replicas``, the connected replicas, each
step bounded so that a stalled Redis costs a round ``CHECK_SECONDS`` at most. Two readers:

* the accept path (``fallback.py``): ``takes_pushes`` is False while Redis is unreachable,
  stalled or short of replicas, so pushes go straight to the local file without waiting;
* ``/readyz``, ``/metrics`` and the status page (``backend.py``): they answer from the last
  round, never from Redis itself, so they answer at once whatever Redis does.

While Redis stays away it says so again every ``REPEAT_SECONDS`` (``spool_redis_down``,
``spool_replicas_short``), so an operator who looks later still sees why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from gateway.spool.base import SpoolError, SpoolView

if TYPE_CHECKING:
    from gateway.spool.redis.streams import StreamStore

__all__ = ["CHECK_SECONDS", "Health"]

log = logging.getLogger("gateway.spool.redis")

INTERVAL_SECONDS = 1.0
CHECK_SECONDS = 0.8  # one round's bound: a stalled Redis is "down" after this
REPEAT_SECONDS = 30.0  # how often a lasting problem is logged again
STALE_SECONDS = 3.0  # a round older than this (the task is stuck) counts as down


class Health:
    """The last round's answers for ``stream``."""

    def __init__(self, stream: StreamStore) -> None:
        self._stream = stream
        self.reachable: bool | None = None  # None: not asked yet
        self.replicas: int | None = None  # connected replicas (read with min_replicas only)
        self.error: str | None = None
        self.view: SpoolView | None = None
        self.checked_at = 0.0  # monotonic
        self._down_since: float | None = None
        self._said_at = 0.0
        self._task: asyncio.Task[None] | None = None
        self.answered = asyncio.Event()  # set by the first round

    # -- readers ----------------------------------------------------------------------

    def short(self) -> str | None:
        """Why Redis cannot take a push as configured now, or None."""
        if self.reachable is None:
            return None  # not known yet: try it
        if not self.reachable or time.monotonic() - self.checked_at > STALE_SECONDS:
            return self.error or f"{self._stream.where}: no answer within {CHECK_SECONDS} s"
        wanted = self._stream.settings.min_replicas
        if wanted and (self.replicas or 0) < wanted:
            return (f"{self._stream.where} has {self.replicas} connected replica(s), fewer "
                    f"than min_replicas={wanted}")
        return None

    def takes_pushes(self) -> bool:
        return self.short() is None

    def failed(self, error: str) -> None:
        """A push found Redis away between two rounds: believed until the next round."""
        self.reachable, self.error = False, error

    # -- the background round -----------------------------------------------------------

    def start(self) -> None:
        """Run ``run`` on this loop, once (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self.run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(INTERVAL_SECONDS)

    async def check(self) -> None:
        """One round, bounded by ``CHECK_SECONDS``."""
        stream = self._stream
        try:
            async with asyncio.timeout(CHECK_SECONDS):
                await stream.redis.primary()
                view = await stream.view(write_probe=True)
                replicas = (await stream.replicas() if stream.settings.min_replicas
                            else None)
        except (SpoolError, TimeoutError) as exc:
            self.error = str(exc) or f"{stream.where}: no answer within {CHECK_SECONDS} s"
            self.reachable = False
            stream.trip()
        else:
            self.view, self.replicas, self.reachable, self.error = view, replicas, True, None
        self.checked_at = time.monotonic()
        self.answered.set()
        self._say()

    def _say(self) -> None:
        """Log a change at once and a lasting problem every ``REPEAT_SECONDS``."""
        problem = self.short()
        now = time.monotonic()
        if problem is None:
            if self._down_since is not None:
                log.warning("spool redis takes pushes again reason_id=spool_redis_back "
                            "where=%r after_seconds=%r", self._stream.where,
                            round(now - self._down_since, 1),
                            extra={"reason_id": "spool_redis_back"})
            self._down_since = None
            return
        reason = "spool_redis_down" if not self.reachable else "spool_replicas_short"
        if self._down_since is None:
            self._down_since = self._said_at = now
        elif now - self._said_at < REPEAT_SECONDS:
            return
        self._said_at = now
        log.error("spool redis cannot take pushes, they go to the local file "
                  "reason_id=%s for_seconds=%r error=%r", reason,
                  round(now - self._down_since, 1), problem, extra={"reason_id": reason})
