"""Stage 8 of ``pipeline`` for ``delivery: fallback``: the backend's own answer when it is
healthy, the spool when it is not, and an answer inside IRIS's 3 s either way
(docs/configuration.md ``delivery``).

The push is forwarded at once. A 2xx (answered ``success_status``), a 4xx other than 408
and 429, or any other final answer of the backend within ``spool_after_seconds`` is relayed
as a direct route relays it. A connection that fails, a 5xx, a 408 or 429, or no answer by
then spools the push (``spool/accept.py``, as ``delivery: spool`` does) and answers
``200 {"spooled":true,"id":N}``; the spool's deliverer sends it again later.

Delivery is at least once: a push the backend received but answered late or with a 5xx is
stored and sent again. The whole exchange, forward and spool write, is bounded by
``ANSWER_BY_SECONDS`` from the request's start: the forward gets what is left once
``SPOOL_RESERVE_SECONDS`` are kept for the spool write, and a spool write that cannot finish
by then is ``503`` with ``Retry-After``, which IRIS's one retry may use.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Final

from aiohttp import web

from gateway.config import RouteSettings
from gateway.errors import BadGatewayError, GatewayTimeoutError, ServiceUnavailableError
from gateway.forward.upstream import Forwarder
from gateway.keys import TRACE, UPSTREAM_STATUS
from gateway.observe.metrics import Metrics
from gateway.spool.accept import Spool
from gateway.spool.attempt import RETRYABLE  # the deliverer's rule: what is worth a retry

__all__ = ["ANSWER_BY_SECONDS", "SPOOL_RESERVE_SECONDS", "Fallback"]

log = logging.getLogger(__name__)

# IRIS counts an answer only within 3 s of sending; 0.2 s is left for the way back.
ANSWER_BY_SECONDS: Final = 2.8
# A spool write commits with one fsync, shared by a group (spool/accept.py): well under this.
SPOOL_RESERVE_SECONDS: Final = 0.3
# Less than this left for the backend: spool at once rather than send a request whose
# answer could not be waited for.
_MIN_FORWARD_SECONDS: Final = 0.05


class Fallback:
    """The last stage of one ``delivery: fallback`` route."""

    __slots__ = ("_forwarder", "_metrics", "_route", "_spool")

    def __init__(self, route: RouteSettings, forwarder: Forwarder, spool: Spool,
                 metrics: Metrics) -> None:
        self._route = route
        self._forwarder = forwarder
        self._spool = spool
        self._metrics = metrics

    async def deliver(self, request: web.Request, body: bytes, *, client_id: str | None,
                      scope: str | None, request_id: str, client_address: str
                      ) -> web.StreamResponse:
        route = self._route
        trace = request[TRACE]
        clock = time.perf_counter
        answer_by = trace.started + ANSWER_BY_SECONDS
        budget = min(route.spool_after_seconds, route.timeout_seconds,
                     answer_by - SPOOL_RESERVE_SECONDS - clock())
        reason = "deadline"
        if budget >= _MIN_FORWARD_SECONDS:
            started = clock()
            try:
                response = await self._forwarder.forward(
                    request, route, body, client_id=client_id, scope=scope,
                    request_id=request_id, forwarded_proto="https",
                    client_address=client_address, budget=budget,
                    traceparent=trace.context.fields)
            except GatewayTimeoutError:
                reason = "timeout"
            except BadGatewayError:
                reason = "unreachable"  # refused, reset, or not HTTP
            else:
                status = response[UPSTREAM_STATUS]
                trace.upstream_status = status
                if status < 500 and status not in RETRYABLE:
                    return response
                reason = str(status) if status in RETRYABLE else "5xx"
            finally:
                self._metrics.observe_upstream(route.path, clock() - started)
        try:
            async with asyncio.timeout(max(answer_by - clock(), 0.0)):
                stored = await self._spool.accept(
                    request, route, body, client_id=client_id, scope=scope,
                    request_id=request_id, forwarded_proto="https",
                    client_address=client_address, traceparent=trace.context.fields)
        except TimeoutError:
            log.error("fallback spool write too slow reason_id=spool_unwritable route=%r",
                      route.path, extra={"reason_id": "spool_unwritable"})
            raise ServiceUnavailableError("The spool cannot store the request now; "
                                          "retry later.", headers={"Retry-After": "5"}) from None
        self._metrics.count("gateway_fallback_spooled_total", route.path, reason)
        return stored
