"""Fixtures shared by every test: a development CA with a server certificate (made by the
gateway's own ``certs`` tool) and signing keys, created once per session; and the real-socket
glue of the end-to-end and adversarial suites: the sample backend on a loopback port, a
config writer, a gateway starter that stops what it started, and a TLS client session."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from gateway.config import Settings, load
from gateway.serve.server import RunningGateway, start_gateway
from gateway.tools.backend import create_backend_app
from gateway.tools.certs import create_dev_certificates


@pytest.fixture(scope="session")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("certs")
    create_dev_certificates(directory)
    return directory


@pytest.fixture(scope="session")
def client_ssl_ctx(cert_dir: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert_dir / "ca.crt"))


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
               | ed25519.Ed25519PrivateKey) -> Path:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path


@pytest.fixture(scope="session")
def signing_keys(cert_dir: Path) -> dict[str, Path]:
    """One private key file per asymmetric algorithm, plus a second ES256 key."""
    return {
        "ES256": _write_key(cert_dir / "es256.pem", ec.generate_private_key(ec.SECP256R1())),
        "ES256-2": _write_key(cert_dir / "es256-2.pem", ec.generate_private_key(ec.SECP256R1())),
        "RS256": _write_key(cert_dir / "rs256.pem", rsa.generate_private_key(65537, 2048)),
        "EdDSA": _write_key(cert_dir / "eddsa.pem", ed25519.Ed25519PrivateKey.generate()),
    }


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
async def session(client_ssl_ctx: ssl.SSLContext) -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.TCPConnector(ssl=client_ssl_ctx)
    async with aiohttp.ClientSession(connector=connector) as client:
        yield client
