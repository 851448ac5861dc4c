"""Stage 8 for ``delivery: fallback``, ``Fallback.deliver``: the backend's own answer when
it gives one in time, the spool otherwise (5xx, 408, 429, refused, too slow), and 503 with
``Retry-After`` when the spool cannot store the push before IRIS's deadline."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from aiohttp import web

from gateway import keys
from gateway.config import RouteSettings
from gateway.errors import BadGatewayError, GatewayTimeoutError, ServiceUnavailableError
from gateway.forward.upstream import Forwarder
from gateway.observe.metrics import Metrics
from gateway.spool.accept import Spool
from gateway.stages.fallback import Fallback

from stage_harness import mocked

ROUTE = RouteSettings(path="/segments/fallback", upstreams=("http://127.0.0.1:9/x",),
                      delivery="fallback", spool_after_seconds=0.5)
SPOOLED = "spooled"


class Backend:
    """The forwarder's stand-in: answers ``status``, or raises ``error``."""

    def __init__(self, status: int = 200, error: Exception | None = None) -> None:
        self.status, self.error = status, error
        self.budgets: list[float] = []

    async def forward(self, request: web.Request, route: RouteSettings, body: bytes,
                      **options: Any) -> web.Response:
        self.budgets.append(options["budget"])
        if self.error is not None:
            raise self.error
        response = web.Response(status=self.status, text="backend")
        response[keys.UPSTREAM_STATUS] = self.status
        return response


class Store:
    """The spool's stand-in: stores every push, after ``delay`` seconds."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.stored: list[bytes] = []

    async def accept(self, request: web.Request, route: RouteSettings, body: bytes,
                     **options: Any) -> web.Response:
        await asyncio.sleep(self.delay)
        self.stored.append(body)
        return web.Response(status=200, text=SPOOLED)


async def deliver(backend: Backend, store: Store, metrics: Metrics | None = None
                  ) -> web.StreamResponse:
    stage = Fallback(ROUTE, cast(Forwarder, backend), cast(Spool, store), metrics or Metrics())
    return await stage.deliver(mocked(path=ROUTE.path), b"{}", client_id="aam", scope=None,
                               request_id="r-1", client_address="192.0.2.10")


@pytest.mark.parametrize("status", [200, 204, 400, 404, 422])
async def test_the_backends_own_answer_is_relayed(status: int) -> None:
    store = Store()
    response = await deliver(Backend(status), store)
    assert response.status == status and store.stored == []


@pytest.mark.parametrize(("backend", "reason"), [
    (Backend(500), "5xx"), (Backend(503), "5xx"), (Backend(408), "408"), (Backend(429), "429"),
    (Backend(error=BadGatewayError()), "unreachable"),
    (Backend(error=GatewayTimeoutError()), "timeout"),
], ids=["500", "503", "408", "429", "refused", "timeout"])
async def test_what_the_backend_did_not_take_is_spooled(backend: Backend, reason: str) -> None:
    store, metrics = Store(), Metrics()
    response = await deliver(backend, store, metrics)
    assert cast(web.Response, response).text == SPOOLED and store.stored == [b"{}"]
    assert metrics.counts[("gateway_fallback_spooled_total", (ROUTE.path, reason))] == 1


async def test_the_backend_gets_at_most_spool_after_seconds() -> None:
    backend = Backend(200)
    await deliver(backend, Store())
    assert 0 < backend.budgets[0] <= ROUTE.spool_after_seconds


async def test_a_spool_too_slow_for_iris_is_503_with_retry_after(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The deadline is IRIS's 3 s; shortened here so that a slow spool misses it at once.
    monkeypatch.setattr("gateway.stages.fallback.ANSWER_BY_SECONDS", 0.05)
    with pytest.raises(ServiceUnavailableError) as caught:
        await deliver(Backend(500), Store(delay=5.0))
    assert (caught.value.status_code, caught.value.error) == (503, "service_unavailable")
    assert caught.value.extra_headers["Retry-After"] == "5"
