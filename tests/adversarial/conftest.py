"""Fixtures of the adversarial suite: the real gateway over real TLS on loopback, in front of
the real sample backend (``backend``, ``start``, ``write_config`` and ``session`` come from
``tests/conftest.py``), configured so that attacks, not throttles, decide the answers: the
failed-authentication limit is lifted and client secrets use the cheapest accepted scrypt."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway.config import Settings
from gateway.serve.server import RunningGateway

from adv_harness import CLIENT_SECRET, base_config, cheap_hash, fetch_token

Backend = tuple[str, web.Application]
ConfigFactory = Callable[..., dict[str, Any]]


@pytest.fixture(scope="session")
def fast_secret_hash() -> str:
    return cheap_hash(CLIENT_SECRET)


@pytest.fixture
def adv_config(cert_dir: Path, signing_keys: dict[str, Path],
               fast_secret_hash: str) -> ConfigFactory:
    """``adv_config(upstream, **route_changes)``: the e2e configuration plus a second route
    (``/any-json``, ``payload: none``) and no failed-authentication throttle."""

    def make(upstream: str | list[str], **route_changes: Any) -> dict[str, Any]:
        config = base_config(cert_dir, signing_keys, fast_secret_hash, upstream)
        config["tokens"]["failed_auth_per_minute"] = 100000
        route = {**config["routes"][0], **route_changes}
        other = {**route, "path": "/any-json", "payload": "none"}
        if isinstance(upstream, str) and upstream.endswith("/segments/aam"):
            other["upstream"] = upstream.removesuffix("/segments/aam") + "/any-json"
        config["routes"] = [route, other]
        return config

    return make


@pytest.fixture
async def adv_gateway(backend: Backend, adv_config: ConfigFactory,
                      write_config: Callable[[dict[str, Any]], Settings],
                      start: Callable[[Settings], Awaitable[RunningGateway]]) -> RunningGateway:
    return await start(write_config(adv_config(backend[0] + "/segments/aam")))


@pytest.fixture
async def token(adv_gateway: RunningGateway, session: aiohttp.ClientSession) -> str:
    return await fetch_token(session, adv_gateway.ports["https"])
