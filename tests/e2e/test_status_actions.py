"""The status page's dead-letter actions over plain HTTP (docs/operations.md#the-status-page):
POST only, a form with the anti-CSRF token, ``Origin`` (or ``Referer``) of this very host,
and a ``Host`` that a DNS-rebinding page cannot forge; ``/status.json`` never holds a header
or a body. The real gateway in process, the real sample backend, real TLS."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway.config import Settings
from gateway.serve.server import RunningGateway
from gateway.tools.seed import SEED_PAYLOAD

from e2e_harness import base_config, fetch_token

pytestmark = pytest.mark.slow


async def _dead_letter_gateway(
        cert_dir: Path, signing_keys: dict[str, Path], secret_hash: str, tmp_path: Path,
        backend: tuple[str, web.Application], write_config: Callable[[dict[str, Any]], Settings],
        start: Callable[[Settings], Awaitable[RunningGateway]],
        session: aiohttp.ClientSession) -> tuple[str, list[int]]:
    config = base_config(cert_dir, signing_keys, secret_hash, backend[0] + "/segments/aam")
    config["routes"][0]["delivery"] = "spool"
    config["state"] = {"path": str(tmp_path / "state.db")}
    config["spool"] = {"retry_initial_seconds": 0.05, "retry_max_seconds": 0.2}
    gateway = await start(write_config(config))
    async with session.post(backend[0] + "/_control", json={"status": 409}) as response:
        assert response.status == 200
    token = await fetch_token(session, gateway.ports["https"])
    for _ in range(2):
        async with session.post(f"https://localhost:{gateway.ports['https']}/segments/aam",
                                data=SEED_PAYLOAD, headers={
                                    "Authorization": f"Bearer {token}",
                                    "Content-Type": "application/json"}) as response:
            assert response.status == 200
    admin = f"http://127.0.0.1:{gateway.ports['admin']}"

    async def dead() -> list[int] | None:
        async with session.get(admin + "/status.json") as response:
            ids = [d["id"] for d in (await response.json())["dead_letters"]]
        return ids if len(ids) == 2 else None

    ids = None
    for _ in range(200):
        if ids := await dead():
            break
        await asyncio.sleep(0.05)
    assert ids
    return admin, ids


async def test_the_actions_refuse_what_a_foreign_page_could_send(
        cert_dir: Path, signing_keys: dict[str, Path], secret_hash: str, tmp_path: Path,
        backend: tuple[str, web.Application], write_config: Callable[[dict[str, Any]], Settings],
        start: Callable[[Settings], Awaitable[RunningGateway]],
        session: aiohttp.ClientSession) -> None:
    admin, ids = await _dead_letter_gateway(cert_dir, signing_keys, secret_hash, tmp_path,
                                            backend, write_config, start, session)
    async with session.get(admin + "/") as response:
        page = await response.text()
        headers = response.headers
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY" and headers["Cache-Control"] == "no-store"
    token = page.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
    good = {"csrf": token, "id": str(ids[0])}
    own = {"Origin": admin}

    async def post(path: str, data: Any, **headers: str) -> tuple[int, str]:
        async with session.post(admin + path, data=data, headers=headers,
                                allow_redirects=False) as response:
            return response.status, await response.text()

    async with session.get(admin + "/spool/retry") as response:
        assert response.status == 405  # never a GET
    assert (await post("/spool/retry", {"id": str(ids[0])}, **own))[0] == 403  # no token
    assert (await post("/spool/retry", {**good, "csrf": "x" * 43}, **own))[0] == 403
    assert (await post("/spool/retry", good, Origin="http://evil.example"))[0] == 403
    assert (await post("/spool/retry", good, Origin="null"))[0] == 403
    assert (await post("/spool/retry", good))[0] == 403  # neither Origin nor Referer
    # A DNS-rebinding page reaches this listener under its own name: refused before any
    # handler (serve/admin_guard.py), the page included, which would carry the token.
    rebound = {"Host": "evil.example", "Origin": "http://evil.example"}
    status, body = await post("/spool/retry", good, **rebound)
    assert status == 421 and "misdirected_request" in body
    async with session.get(admin + "/", headers={"Host": "evil.example"}) as response:
        foreign = await response.text()
        assert response.status == 421
    assert token not in foreign and "csrf-token" not in foreign
    assert (await post("/spool/retry", f"csrf={token}&id={ids[0]}".encode(),
                       **own, **{"Content-Type": "application/json"}))[0] == 400
    async with session.get(admin + "/status.json") as response:
        still = (await response.json())["dead_letters"]
    assert [d["id"] for d in still] == ids  # nothing above changed anything
    assert set(still[0]) == {"id", "route", "method", "bytes", "accepted_at", "attempts",
                             "last_status", "last_error"}  # never headers or a body

    # The page's own form: same origin (here by Referer, as some browsers send), token.
    status, _ = await post("/spool/purge", good, Referer=admin + "/")
    assert status == 303
    async with session.get(admin + "/status.json") as response:
        assert [d["id"] for d in (await response.json())["dead_letters"]] == ids[1:]
    status, _ = await post("/spool/retry", {"csrf": token, "all": "1"}, **own)
    assert status == 303
    async with session.get(admin + "/?action=retry&changed=1&asked=all") as response:
        assert "Requeued 1 item(s) (every dead letter)" in await response.text()
