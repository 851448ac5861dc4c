"""End-to-end fixtures: the real gateway on loopback ports with real TLS, in front of the
real sample backend on another port. Nothing here is mocked."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from gateway.hashing import hash_secret
from gateway.server import RunningGateway, start_gateway
from gateway.settings import Settings, load
from gateway.tools.backend import create_backend_app

from e2e_harness import CLIENT_SECRET, base_config


@pytest.fixture(scope="session")
def secret_hash() -> str:
    return hash_secret(CLIENT_SECRET)


@pytest.fixture
async def backend() -> AsyncIterator[tuple[str, web.Application]]:
    """The sample legacy backend on its own loopback port: (base URL, app)."""
    app = create_backend_app()
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", app
    await runner.cleanup()


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[dict[str, Any]], Settings]:
    def write(config: dict[str, Any]) -> Settings:
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        return load(path)
    return write


@pytest.fixture
async def start() -> AsyncIterator[Callable[[Settings], Awaitable[RunningGateway]]]:
    started: list[RunningGateway] = []

    async def _start(settings: Settings) -> RunningGateway:
        running = await start_gateway(settings)
        started.append(running)
        return running

    yield _start
    for running in started:
        await running.stop()


@pytest.fixture
async def gateway(cert_dir: Path, signing_keys: dict[str, Path], secret_hash: str,
                  backend: tuple[str, web.Application],
                  write_config: Callable[[dict[str, Any]], Settings],
                  start: Callable[[Settings], Awaitable[RunningGateway]]) -> RunningGateway:
    config = base_config(cert_dir, signing_keys, secret_hash, backend[0] + "/segments/aam")
    return await start(write_config(config))


@pytest.fixture
async def session(client_ssl_ctx: ssl.SSLContext) -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.TCPConnector(ssl=client_ssl_ctx)
    async with aiohttp.ClientSession(connector=connector) as client:
        yield client
