"""Spool delivery, the accepting half (docs/operations.md): store durably, then answer ``200``.

A ``delivery: spool`` route runs every stage of ``pipeline.py``; then, instead of the
forward, ``Spool.accept`` builds the header block exactly as the forwarder would
(``forward/headers.request_fields``), stores it with the method, raw query and body in the
backend's ``SpoolStore`` and answers ``200`` once the store holds it durably. The backend's
deliverer sends it later. ``Wake`` tells that deliverer at once.

Past ``spool.max_items`` or ``max_bytes`` (queued and dead letters: both occupy the store),
or when the store cannot be written, the route answers ``503`` with ``Retry-After``: IRIS's
own retry is then used, nothing accepted is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import Counter

from aiohttp import web

from gateway.config import RouteSettings, SpoolSettings
from gateway.errors import ServiceUnavailableError
from gateway.forward.headers import request_fields
from gateway.spool.base import SpoolError, SpoolStore

__all__ = ["Spool", "Wake"]

log = logging.getLogger(__name__)

# Well inside IRIS's 3 s: a disk that stalls longer gets a 503, which IRIS retries.
ACCEPT_TIMEOUT_SECONDS = 2.0
RETRY_AFTER_SECONDS = 5


class Wake:
    """What wakes the deliverer, which may wait on a loop of its own (``sqlite/thread.py``):
    ``set`` may be called from any thread and, on the accept path, costs a flag unless the
    deliverer is waiting right then."""

    def __init__(self) -> None:
        self._flag = False
        self._waiter: tuple[asyncio.AbstractEventLoop, asyncio.Future[None]] | None = None

    def set(self) -> None:
        self._flag = True
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            loop, future = waiter
            with contextlib.suppress(RuntimeError):  # a closed loop has nobody waiting
                loop.call_soon_threadsafe(_settle, future)

    def clear(self) -> None:
        self._flag = False

    async def wait(self, seconds: float) -> None:
        """Return once set (at once if it is) or after ``seconds``."""
        if self._flag:
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._waiter = (loop, future)
        if self._flag:  # set between the test and the publication of the waiter
            self._waiter = None
            return
        try:
            async with asyncio.timeout(seconds):
                await future
        except TimeoutError:
            pass
        finally:
            self._waiter = None


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Spool:
    """The spool of one process: the accept path over ``store`` and the spool's counters
    (``metrics.CounterSource``; the deliverer adds its own to ``counts``). Made by the
    backend's ``open_spool``."""

    def __init__(self, settings: SpoolSettings, store: SpoolStore,
                 counts: Counter[str] | None = None) -> None:
        self.settings = settings
        self.store = store
        self.counts: Counter[str] = Counter() if counts is None else counts
        # Set on every accept: the deliverer of this process starts at once, not at its poll.
        self.wake = Wake()

    def counters(self) -> dict[str, int]:
        return {**self.counts, **self.store.counters()}

    async def accept(self, request: web.Request, route: RouteSettings, body: bytes, *,
                     client_id: str | None, scope: str | None, request_id: str,
                     forwarded_proto: str, client_address: str,
                     traceparent: str = "") -> web.Response:
        """Store the request as the forwarder would send it; 200 once it is on disk, or
        ServiceUnavailableError (503 + Retry-After) when it cannot be stored."""
        method = request.method
        fields = request_fields(request.headers, method, len(body), route,
                                client_id=client_id, scope=scope, request_id=request_id,
                                forwarded_proto=forwarded_proto, client_address=client_address,
                                traceparent=traceparent)
        key = str(uuid.uuid4())
        fields += b'Idempotency-Key: "%s"\r\n' % key.encode()
        try:
            async with asyncio.timeout(ACCEPT_TIMEOUT_SECONDS):
                item_id = await self.store.add(route.path, method,
                                               request.rel_url.raw_query_string, fields, body,
                                               key=key)
        except (SpoolError, TimeoutError) as exc:
            error = exc if isinstance(exc, SpoolError) else SpoolError("timed out")
            log.error("spool write failed reason_id=%s error=%r", error.reason_id, str(exc),
                      extra={"reason_id": error.reason_id})
            raise ServiceUnavailableError(error.answer, headers=_RETRY_AFTER) from None
        if item_id is None:
            self.counts[f"gateway_spool_refused_total:{route.path}"] += 1
            raise ServiceUnavailableError("The spool is full; retry later.",
                                          headers=_RETRY_AFTER)
        self.counts[f"gateway_spool_accepted_total:{route.path}"] += 1
        self.wake.set()
        return web.Response(status=route.success_status or 200,
                            body=b'{"spooled":true,"id":%d}' % item_id,
                            content_type="application/json")

    async def close(self) -> None:
        """Close the store; its last writes are committed first."""
        await self.store.close()


_RETRY_AFTER = {"Retry-After": str(RETRY_AFTER_SECONDS)}
