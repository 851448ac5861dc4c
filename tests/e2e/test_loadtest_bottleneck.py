"""``gateway loadtest --admin-url`` against the real gateway and a slow real backend: the
report reads the gateway's /metrics and names the backend as the limit."""

from __future__ import annotations

import ssl

import aiohttp
from aiohttp import web

from gateway.serve.server import RunningGateway
from gateway.tools.loadtest import run_load
from gateway.tools.loadtest_options import LoadOptions, basic_credential

from e2e_harness import CLIENT_ID, CLIENT_SECRET


async def test_a_slow_backend_is_named_the_bottleneck(
        gateway: RunningGateway, backend: tuple[str, web.Application],
        client_ssl_ctx: ssl.SSLContext) -> None:
    async with aiohttp.ClientSession() as plain, \
            plain.post(backend[0] + "/_control", json={"delay": 0.05, "reset": True}):
        pass
    report = await run_load(LoadOptions(
        url=f"https://localhost:{gateway.ports['https']}/segments/aam",
        credential=basic_credential(CLIENT_ID, CLIENT_SECRET), requests=40, concurrency=4,
        duration=30, ssl_context=client_ssl_ctx,
        admin_url=f"http://127.0.0.1:{gateway.ports['admin']}"))
    assert report.successes == 40
    assert report.gateway is not None and report.gateway.requests == 40
    assert report.bottleneck.where == "backend", report.bottleneck.why
    assert report.to_dict()["bottleneck"]["where"] == "backend"
