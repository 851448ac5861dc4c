"""End-to-end fixtures: the real gateway on loopback ports with real TLS, in front of the
real sample backend on another port (``backend``, ``start``, ``write_config`` and ``session``
live in ``tests/conftest.py``, shared with the adversarial suite). Nothing here is mocked."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from gateway.config import Settings
from gateway.config.hashes import hash_secret
from gateway.serve.server import RunningGateway

from browser_harness import browser, screenshots  # noqa: F401 - fixtures for the page tests
from e2e_harness import CLIENT_SECRET, base_config
from proc_harness import CapturedProcess


@pytest.fixture(scope="session")
def secret_hash() -> str:
    return hash_secret(CLIENT_SECRET)


@pytest.fixture
async def gateway(cert_dir: Path, signing_keys: dict[str, Path], secret_hash: str,
                  backend: tuple[str, web.Application],
                  write_config: Callable[[dict[str, Any]], Settings],
                  start: Callable[[Settings], Awaitable[RunningGateway]]) -> RunningGateway:
    config = base_config(cert_dir, signing_keys, secret_hash, backend[0] + "/segments/aam")
    return await start(write_config(config))


@pytest.fixture
async def processes() -> AsyncIterator[list[CapturedProcess]]:
    """Processes a test starts; each is killed (its whole group) at the end."""
    started: list[CapturedProcess] = []
    yield started
    for process in started:
        process.kill()
