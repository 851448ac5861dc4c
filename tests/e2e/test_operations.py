"""Operations over real sockets, in-process (docs/architecture.md, docs/operations.md): metrics
after known
traffic, revocation and introspection, readiness, reloads, and no secret in any log line."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from gateway import keys
from gateway.config import LoggingSettings, Settings
from gateway.observe.accesslog import stdout_writer
from gateway.observe.logs import configure_logging
from gateway.serve.server import RunningGateway
from gateway.tools.seed import SEED_PAYLOAD

from e2e_harness import (
    CLIENT_ID,
    CLIENT_SECRET,
    SEED_CREDENTIAL,
    base_config,
    basic,
    fetch_token,
)

JSON = {"Content-Type": "application/json"}


async def _metrics(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with aiohttp.ClientSession() as plain, \
            plain.get(f"http://127.0.0.1:{port}/metrics") as response:
        assert response.status == 200
        text = await response.text()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def _push(session: aiohttp.ClientSession, port: int, token: str | None,
                body: bytes = SEED_PAYLOAD) -> int:
    headers = {**JSON, **({"Authorization": f"Bearer {token}"} if token else {})}
    async with session.post(f"https://localhost:{port}/segments/aam", data=body,
                            headers=headers) as response:
        await response.read()
        return response.status


async def _form(session: aiohttp.ClientSession, port: int, path: str, form: dict[str, str],
                client: tuple[str, str] = (CLIENT_ID, CLIENT_SECRET)) -> tuple[int, Any]:
    async with session.post(f"https://localhost:{port}{path}", data=form,
                            headers={"Authorization": basic(*client)}) as response:
        body = await response.read()
        return response.status, json.loads(body) if body else None


async def test_metrics_move_with_known_traffic(gateway: RunningGateway,
                                               session: aiohttp.ClientSession) -> None:
    https, admin = gateway.ports["https"], gateway.ports["admin"]
    token = await fetch_token(session, https)
    assert [await _push(session, https, token) for _ in range(3)] == [200] * 3
    assert await _push(session, https, None) == 401
    assert await _push(session, https, token, b'{"Users": []}') == 400
    status, _ = await _form(session, https, "/oauth2/token",
                            {"grant_type": "client_credentials"}, (CLIENT_ID, "wrong"))
    assert status == 401
    m = await _metrics(admin)
    route = (("method", "POST"), ("route", "/segments/aam"))
    assert m[("gateway_requests_total", (*route, ("status", "200")))] == 3
    assert m[("gateway_requests_total", (*route, ("status", "401")))] == 1
    assert m[("gateway_requests_total", (*route, ("status", "400")))] == 1
    assert m[("gateway_tokens_issued_total", (("client_id", CLIENT_ID),))] == 1
    assert m[("gateway_auth_failures_total", (("reason", "missing_token"),))] == 1
    assert m[("gateway_auth_failures_total", (("reason", "invalid_client"),))] == 1
    assert m[("gateway_payload_rejections_total", (("reason", "invalid_payload"),
                                                   ("route", "/segments/aam")))] == 1
    # One verification, then cache hits for the other pushes that carried the token.
    assert m[("gateway_token_cache_misses_total", ())] == 1
    assert m[("gateway_token_cache_hits_total", ())] == 3
    assert m[("gateway_upstream_duration_seconds_count", (("route", "/segments/aam"),))] == 3
    assert m[("gateway_request_duration_seconds_count", (("route", "/segments/aam"),))] == 5
    assert m[("gateway_in_flight_requests", ())] == 0


async def test_revocation_and_introspection(gateway: RunningGateway,
                                            session: aiohttp.ClientSession) -> None:
    https = gateway.ports["https"]
    mine = await fetch_token(session, https)
    theirs = await fetch_token(session, https, "reader", CLIENT_SECRET)
    status, answer = await _form(session, https, "/oauth2/introspect", {"token": mine})
    assert status == 200 and answer["active"] is True
    assert answer["client_id"] == CLIENT_ID and answer["scope"] == "segments:write"
    # Another client's token, garbage, no token parameter.
    assert await _form(session, https, "/oauth2/introspect", {"token": theirs}) == (
        200, {"active": False})
    assert await _form(session, https, "/oauth2/introspect", {"token": "x.y.z"}) == (
        200, {"active": False})
    assert (await _form(session, https, "/oauth2/introspect", {}))[0] == 400
    status, answer = await _form(session, https, "/oauth2/revoke", {"token": theirs})
    assert (status, answer["error"]) == (400, "invalid_grant")
    assert (await _form(session, https, "/oauth2/revoke", {"token": mine},
                        (CLIENT_ID, "wrong")))[0] == 401
    assert await _push(session, https, mine) == 200  # cached as valid before the revocation
    assert await _form(session, https, "/oauth2/revoke", {"token": mine}) == (200, None)
    assert await _push(session, https, mine) == 401
    assert await _form(session, https, "/oauth2/introspect", {"token": mine}) == (
        200, {"active": False})
    assert await _form(session, https, "/oauth2/revoke", {"token": "not-a-token"}) == (200, None)
    async with session.get(f"https://localhost:{https}/.well-known/oauth-authorization-server"
                           ) as response:
        document = await response.json()
    assert document["revocation_endpoint"] == "https://localhost:8443/oauth2/revoke"
    assert document["introspection_endpoint"] == "https://localhost:8443/oauth2/introspect"


async def test_readyz_names_an_unreachable_upstream(
        cert_dir: Path, signing_keys: dict[str, Path], secret_hash: str,
        gateway: RunningGateway, write_config: Callable[[dict[str, Any]], Settings],
        start: Callable[[Settings], Awaitable[RunningGateway]]) -> None:
    async with aiohttp.ClientSession() as plain:
        async with plain.get(f"http://127.0.0.1:{gateway.ports['admin']}/readyz") as response:
            assert response.status == 200
            assert (await response.json())["status"] == "ready"
        config = base_config(cert_dir, signing_keys, secret_hash, "http://127.0.0.1:9/x")
        broken = await start(write_config(config))
        async with plain.get(f"http://127.0.0.1:{broken.ports['admin']}/readyz") as response:
            assert response.status == 503
            reasons = (await response.json())["reasons"]
            assert any("127.0.0.1:9" in reason for reason in reasons)


async def test_reload_in_process(gateway: RunningGateway, session: aiohttp.ClientSession,
                                 backend: tuple[str, web.Application]) -> None:
    https = gateway.ports["https"]
    token = await fetch_token(session, https)
    source = gateway.app[keys.SETTINGS].source
    good = source.read_text()
    source.write_text(good.replace("routes:", "routes: [\n"))
    assert await gateway.reload() is False
    assert await _push(session, https, token) == 200
    config = yaml.safe_load(good)
    config["clients"] = [c for c in config["clients"] if c["client_id"] != CLIENT_ID]
    config["routes"].append({"path": "/other", "upstream": backend[0] + "/o", "payload": "none",
                             "scope": "read"})
    source.write_text(yaml.safe_dump(config))
    assert await gateway.reload() is True
    assert await _push(session, https, token) == 401  # the removed client's cached token
    reader = await fetch_token(session, https, "reader", CLIENT_SECRET)
    async with session.post(f"https://localhost:{https}/other", data=b"{}", headers={
            **JSON, "Authorization": f"Bearer {reader}"}) as response:
        assert response.status == 200
    async with session.delete(f"https://localhost:{https}/other") as response:
        assert (response.status, response.headers["Allow"]) == (405, "POST")


_JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.")


async def test_no_secret_reaches_any_log(gateway: RunningGateway,
                                         session: aiohttp.ClientSession,
                                         capfd: pytest.CaptureFixture[str]) -> None:
    """Every endpoint, successes and failures, with known secrets; then the whole output."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    configure_logging(LoggingSettings(level="debug"))
    try:
        https = gateway.ports["https"]
        token = await fetch_token(session, https)
        await _push(session, https, token)
        await _push(session, https, token + "x")
        await _push(session, https, "malformed token!")
        for path in ("/oauth2/token", "/oauth2/introspect", "/oauth2/revoke"):
            await _form(session, https, path, {"grant_type": "client_credentials",
                                               "token": token})
            await _form(session, https, path, {"grant_type": "client_credentials"},
                        (CLIENT_ID, CLIENT_SECRET + "-wrong"))
        async with session.post(f"https://localhost:{https}/oauth2/token",
                                data="grant_type=client_credentials",
                                headers={"Authorization": f"Basic {SEED_CREDENTIAL}",
                                         "Content-Type": "application/x-www-form-urlencoded"}):
            pass
        async with session.get(f"https://localhost:{https}/segments/aam?access_token={token}",
                               headers={"Authorization": f"Bearer {token}"}):
            pass
        async with session.get(f"https://localhost:{https}/nowhere",
                               headers={"Authorization": basic(CLIENT_ID, CLIENT_SECRET)}):
            pass
        await gateway.reload()
    finally:
        stdout_writer().flush()
        root.handlers[:], level = saved
        root.setLevel(level)
    output = capfd.readouterr()
    text = output.out + output.err
    assert '"logger":"gateway.access"' in text and "token_revoked" in text
    for secret in (token, CLIENT_SECRET, SEED_CREDENTIAL, basic(CLIENT_ID, CLIENT_SECRET)[6:]):
        assert secret not in text
    assert not _JWT.search(text)
    assert "Bearer " not in text and "Basic " not in text


async def test_access_log_keeps_the_backends_own_status(
        gateway: RunningGateway, backend: tuple[str, web.Application],
        session: aiohttp.ClientSession, capfd: pytest.CaptureFixture[str]) -> None:
    """IRIS gets 200 for a backend's 204 (success_status), but the operator sees 204."""
    async with session.post(backend[0] + "/_control", json={"status": 204}) as r:
        assert r.status == 200
    https = gateway.ports["https"]
    token = await fetch_token(session, https)
    assert await _push(session, https, token) == 200
    stdout_writer().flush()
    lines = [json.loads(line) for line in capfd.readouterr().out.splitlines()
             if '"logger":"gateway.access"' in line and '"/segments/aam"' in line]
    assert [(line["status"], line["upstream_status"]) for line in lines] == [(200, 204)]
