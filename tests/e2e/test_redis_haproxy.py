"""Two ``gateway serve`` processes sharing one real Redis behind a real HAProxy started with
the shipped ``deploy/haproxy.cfg`` (docs/deploy.md; docs/deploy.md): both share the load, and
when one is killed (``kill -9``) every later push is still answered ``200``: HAProxy
retries a request whose connection failed on the other instance (``retry-on
conn-failure``, ``option redispatch``) and its health checks mark the dead one down.
Every wait is bounded; every process started here is killed at the end."""

from __future__ import annotations

import os
import signal
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from gateway.tools.seed import SEED_PAYLOAD

from e2e_harness import base_config, fetch_token
from polling import until
from proc_harness import CapturedProcess, GatewayProcess
from redis_harness import (
    HAPROXY,
    RedisServer,
    free_port,
    needs_haproxy,
    needs_redis,
)

pytestmark = [needs_redis, needs_haproxy, pytest.mark.slow]

HAPROXY_CFG = Path(__file__).resolve().parents[2] / "deploy" / "haproxy.cfg"




@pytest.fixture
async def fleet(tmp_path: Path, cert_dir: Path, signing_keys: dict[str, Path],
                secret_hash: str, backend: tuple[str, web.Application]
                ) -> AsyncIterator[tuple[int, list[GatewayProcess], CapturedProcess]]:
    redis_server = RedisServer(tmp_path / "redis")
    gateways: list[GatewayProcess] = []
    proxy: CapturedProcess | None = None
    try:
        env = {"HAPROXY_PEM": str(tmp_path / "haproxy.pem"),
               "GATEWAY_CA_FILE": str(cert_dir / "ca.crt"), "GATEWAY_TLS_NAME": "localhost"}
        (tmp_path / "haproxy.pem").write_bytes((cert_dir / "server.crt").read_bytes()
                                               + (cert_dir / "server.key").read_bytes())
        for index in (1, 2):
            config = base_config(cert_dir, signing_keys, secret_hash,
                                 backend[0] + "/segments/aam")
            port, admin = free_port(), free_port()
            config["server"].update({"port": port, "http_port": None,
                                     "trusted_proxies": ["127.0.0.1/32"],
                                     # Two gateways, one directory: a pid file each.
                                     "pid_file": f"var/gateway-{index}.pid"})
            config["server"]["admin"]["port"] = admin
            config["state"] = {"backend": "redis", "url": redis_server.url}
            path = tmp_path / f"gateway-{index}.yaml"
            path.write_text(yaml.safe_dump(config))
            gateways.append(GatewayProcess(path))
            env.update({f"GATEWAY{index}": f"127.0.0.1:{port}",
                        f"GATEWAY{index}_ADMIN_PORT": str(admin)})
        for gateway in gateways:
            await gateway.serving()
        public = free_port()
        proxy = CapturedProcess([HAPROXY, "-db", "-f", str(HAPROXY_CFG)],
                                {**env, "HAPROXY_BIND": f"127.0.0.1:{public}"})
        yield public, gateways, proxy
    finally:
        for started in (proxy, *gateways):
            if started is not None:
                started.kill()
        redis_server.stop()


async def _push(ssl_ctx: ssl.SSLContext, port: int, token: str) -> int:
    """One push on a fresh connection, so HAProxy balances every one."""
    connector = aiohttp.TCPConnector(ssl=ssl_ctx, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as client, \
            client.post(f"https://localhost:{port}/segments/aam", data=SEED_PAYLOAD,
                        headers={"Authorization": f"Bearer {token}",
                                 "Content-Type": "application/json"}) as response:
        await response.read()
        return response.status


def _served(gateway: GatewayProcess) -> int:
    return sum(1 for r in gateway.records()
               if r.get("path") == "/segments/aam" and r.get("status") == 200)


async def test_two_instances_share_the_load_and_a_killed_one_loses_no_retryable_push(
        fleet: tuple[int, list[GatewayProcess], CapturedProcess], client_ssl_ctx: ssl.SSLContext,
        session: aiohttp.ClientSession) -> None:
    public, (first, second), proxy = fleet

    async def token() -> str | None:
        try:
            return await fetch_token(session, public)
        except aiohttp.ClientError:
            return None  # HAProxy still starting
    bearer: str = await until(token, 10.0, "a token through HAProxy")

    statuses = [await _push(client_ssl_ctx, public, bearer) for _ in range(20)]
    assert statuses == [200] * 20

    async def both_logged() -> bool:
        return _served(first) + _served(second) == 20
    await until(both_logged, 5.0, "20 access lines")
    assert _served(first) > 0 and _served(second) > 0, "HAProxy sent everything to one"

    os.killpg(second.process.pid, signal.SIGKILL)
    second.process.wait(timeout=10)
    before = _served(first)
    statuses = [await _push(client_ssl_ctx, public, bearer) for _ in range(30)]
    assert statuses == [200] * 30, "a push to the killed instance was not retried"

    async def all_on_first() -> bool:
        return _served(first) - before == 30
    await until(all_on_first, 5.0, "the survivor serving every push")

    async def marked_down() -> Any:
        return any("gw2" in line and "DOWN" in line for line in list(proxy.lines))
    await until(marked_down, 5.0, "HAProxy marking gw2 DOWN")
    # HAProxy's log shows at least one push redispatched from the dead instance ("+1").
    assert any("gateways/gw1" in line and "/+" in line for line in list(proxy.lines))
