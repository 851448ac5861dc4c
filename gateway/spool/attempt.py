"""One try of a stored push, and what it came to: the same rules for both spool backends
(``sqlite/deliverer.py`` for the SQLite file, ``redis/deliverer.py`` for Redis Streams).

* a 2xx: delivered;
* a refused or broken connection, a timeout, a 5xx, 408 or 429: try again later. A
  connection that never opened never reached the backend, so it does not count against
  ``max_attempts`` (an outage is bounded by ``max_age_seconds`` alone);
* any other status: the backend refused the push itself, so it goes to the dead letters
  at once, with the status and the start of the answer.

The deliverers record the outcome in their own store; the logging and counting of a dead
letter, the backoff between tries and the watch over a route's run are here so both say
the same.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from gateway.config import RouteSettings
from gateway.errors import BadGatewayError, GatewayTimeoutError
from gateway.forward.h1pool import ConnectFailed, UpstreamAnswer

__all__ = ["RETRYABLE", "Outcome", "Wakes", "attempt", "backoff_seconds", "end_runs", "excerpt",
           "note_dead", "watch_run"]

log = logging.getLogger("gateway.spool.deliverer")

RETRYABLE = frozenset({408, 429})  # with every 5xx


def backoff_seconds(attempt: int, initial: float, most: float,
                    rng: random.Random | None = None) -> float:
    """The wait before try ``attempt + 1``: ``initial * 2**(attempt-1)`` capped at ``most``,
    of which a random half is jitter (so retries of many items do not march in step)."""
    ceiling = min(most, initial * 2.0 ** min(max(attempt - 1, 0), 62))
    return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)


class Sender(Protocol):
    async def send(self, route: RouteSettings, method: str, query: str, fields: bytes,
                   body: bytes) -> UpstreamAnswer: ...


class Wakes(Protocol):
    def set(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: Literal["delivered", "retry", "dead"]
    status: int | None
    error: str = ""  # retry: why; dead: the start of the backend's answer
    counted: bool = True  # retry: whether it counts against max_attempts


def excerpt(body: bytes, limit: int = 200) -> str:
    """The start of a backend's answer, printable ASCII only, for the dead-letter list."""
    text = body[:limit].decode("utf-8", "replace")
    return "".join(c if " " <= c <= "~" else " " for c in text).strip()


async def attempt(sender: Sender, route: RouteSettings, method: str, query: str,
                  fields: bytes, body: bytes) -> Outcome:
    try:
        answer = await sender.send(route, method, query, fields, body)
    except (BadGatewayError, GatewayTimeoutError) as exc:
        return Outcome("retry", None, exc.error,
                       counted=not isinstance(exc.__cause__, ConnectFailed))
    status = answer.status
    if 200 <= status < 300:
        return Outcome("delivered", status)
    if status >= 500 or status in RETRYABLE:
        return Outcome("retry", status, f"status {status}")
    return Outcome("dead", status, excerpt(answer.body))


def note_dead(counts: Counter[str], route: str, item_id: object, status: int | None,
              why: str) -> None:
    counts[f"gateway_spool_dead_letters_total:{route}"] += 1
    log.warning("spool item dead-lettered reason_id=spool_dead_letter id=%r route=%r "
                "status=%r why=%r", item_id, route, status, why,
                extra={"reason_id": "spool_dead_letter"})


def watch_run(busy: dict[str, asyncio.Task[None]], route: str,
              run: Coroutine[Any, Any, None], wake: Wakes) -> None:
    """Start a route's run as a task held in ``busy``; when it ends, the route's next
    batch is claimed at once, and a run that failed is logged, never a silent stop (what
    it held is tried again: leases expire, pending entries are claimed again)."""
    task = asyncio.get_running_loop().create_task(run)
    busy[route] = task

    def done(finished: asyncio.Task[None]) -> None:
        busy.pop(route, None)
        wake.set()
        if not finished.cancelled() and finished.exception() is not None:
            log.error("spool delivery failed reason_id=spool_delivery_failed route=%r",
                      route, exc_info=finished.exception(),
                      extra={"reason_id": "spool_delivery_failed"})

    task.add_done_callback(done)


async def end_runs(busy: dict[str, asyncio.Task[None]], seconds: float) -> None:
    """Let the routes' runs in flight finish for ``seconds``, then cancel what is left
    (what a cancelled run held is tried again: leases expire, entries stay pending)."""
    tasks = list(busy.values())
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=seconds)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
