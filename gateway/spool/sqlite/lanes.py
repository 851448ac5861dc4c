"""One route's delivery run (``deliverer.py``): ``concurrency`` lanes over the claimed items,
with the route's next batch claimed while the current one is still in flight.

Why it is built this way: under a burst the event loop is saturated by accepts, and every
wake-up of a waiting coroutine waits for a whole pass over the loop's ready queue, a few
milliseconds each. Measured with ``bench/burst.py``, the first deliverer spent about four
such passes per item (a task per item, a semaphore, a task per deletion) and, for every
batch, waited for its deletions to commit and then for its next claim to commit, while the
backend idled: it delivered at about half of what the backend could take for as long as
pushes arrived. Here each lane is one long-lived task that sends its next item as soon as
the previous answer is read, deletions are queued without a task of their own
(``SpoolWriter.submit``), and the next batch is claimed once the items in hand fall to half
a batch (``statements.claim(after=...)``), so the backend never waits on the spool file.

The order and halting rules are those of a single batch: items leave in id order, at most
``concurrency`` at once; the first send that must wait (a retry) halts the run, and every
item in hand that was not tried is given back at once.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable

from gateway.spool.base import SpoolError
from gateway.spool.sqlite import statements as store
from gateway.spool.sqlite.writer import SpoolWriter

__all__ = ["BATCH", "RouteStream"]

log = logging.getLogger(__name__)

BATCH = 32  # items claimed per transaction
_SETTLE_EVERY = 256  # deletions in hand before the committed ones are checked and dropped

# send(item, deletions, halt): one try of ``item``; False when the route must wait, and
# ``halt()`` called as soon as that is known (before the retry is written).
Send = Callable[[store.Item, list["asyncio.Future[None]"], Callable[[], None]], Awaitable[bool]]


class RouteStream:
    """Delivers ``items`` (claimed by the caller) and the route's next batches while there
    are any, ``renew()`` holds and nothing failed (``Send``)."""

    def __init__(self, writer: SpoolWriter, route: str, owner: str, lease_seconds: float,
                 concurrency: int, send: Send, *, stopping: Callable[[], bool],
                 renew: Callable[[], bool]) -> None:
        self._writer = writer
        self._route = route
        self._owner = owner
        self._lease = lease_seconds
        self._lanes = max(1, concurrency)
        self._send = send
        self._stopping = stopping
        self._renew = renew
        self._pending: collections.deque[store.Item] = collections.deque()
        self._last = 0
        self._refill: asyncio.Task[None] | None = None
        self._exhausted = False
        self._deletions: list[asyncio.Future[None]] = []
        self.halted = False

    async def run(self, items: list[store.Item]) -> None:
        self._take(items)
        try:
            await asyncio.gather(*(self._lane() for _ in range(self._lanes)))
        finally:
            refill = self._refill
            if refill is not None:  # its items, if any, are given back below
                await asyncio.gather(refill, return_exceptions=True)
            await self._give_back()
            await asyncio.gather(*self._deletions, return_exceptions=True)
            self._settle()

    def _take(self, items: list[store.Item]) -> None:
        if items:
            self._pending.extend(items)
            self._last = items[-1].id
        else:
            self._exhausted = True

    async def _lane(self) -> None:
        pending = self._pending
        while not self.halted and not self._stopping():
            if (len(pending) <= BATCH // 2 and self._refill is None and not self._exhausted
                    and self._renew()):
                self._refill = asyncio.get_running_loop().create_task(self._claim_more())
            if not pending:
                refill = self._refill
                if refill is None:
                    return
                await asyncio.shield(refill)  # a lane stopped at shutdown leaves it running
                continue
            item = pending.popleft()
            if not await self._send(item, self._deletions, self._halt):
                self.halted = True
            if len(self._deletions) >= _SETTLE_EVERY:
                self._settle()

    def _halt(self) -> None:
        self.halted = True

    async def _claim_more(self) -> None:
        try:
            items = await self._writer.call(
                functools.partial(store.claim, after=self._last), self._route, self._owner,
                time.time(), BATCH, self._lease)
        except SpoolError:
            items = []  # the run loop logs the outage at its next claim
        finally:
            self._refill = None
        self._take(items)

    async def _give_back(self) -> None:
        untried = [item.id for item in self._pending]
        self._pending.clear()
        if untried:  # on a SpoolError their leases expire, or the next process reaps them
            with contextlib.suppress(SpoolError):
                await self._writer.call(store.release, untried, self._owner)

    def _settle(self) -> None:
        """Log the deletions that failed and drop the finished ones from the list."""
        kept = []
        for future in self._deletions:
            if not future.done():
                kept.append(future)
            elif not future.cancelled() and future.exception() is not None:
                # The item stays, leased: it is delivered again when the lease expires.
                log.error("spool deletion failed reason_id=spool_unwritable error=%r",
                          str(future.exception()), extra={"reason_id": "spool_unwritable"})
        self._deletions[:] = kept
