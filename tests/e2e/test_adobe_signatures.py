"""Adobe's request signature through the real gateway (TLS on loopback) in front of the real
sample backend process (docs/adobe.md "Request signing"): Adobe's worked example, GET
signed over its path and query, key rotation, wrong signatures never reaching the backend,
and ``auth: signature`` routes that ask for no bearer token."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.config import Settings
from gateway.serve.server import RunningGateway
from gateway.tools.payloads import IRIS_SHAPED_PUSH

from e2e_harness import base_config, fetch_token
from proc_harness import CapturedProcess
from spool_harness import admin_metrics, backend_process

Start = Callable[[Settings], Awaitable[RunningGateway]]
ADOBE_KEY = "sample_partner_private_key"
ADOBE_BODY = b"POST message content"
ADOBE_SIGNATURE = "+wFdR/afZNoVqtGl8/e1KJ4ykPU="
OLD_KEY, NEW_KEY = "the-key-adobe-has-now", "the-key-adobe-is-given"


def sign(key: str, message: bytes) -> str:
    """What Adobe's Java sends: Base64.encodeBase64String(HmacSHA1(key, message)).trim()."""
    return base64.b64encode(hmac.new(key.encode(), message, hashlib.sha1).digest()).decode()


@pytest.fixture
async def signed(cert_dir: Path, signing_keys: dict[str, Path], secret_hash: str,
                 processes: list[CapturedProcess],
                 write_config: Callable[[dict[str, Any]], Settings], start: Start,
                 ) -> tuple[RunningGateway, str]:
    url, _ = await backend_process(processes)
    config = base_config(cert_dir, signing_keys, secret_hash, url + "/segments/aam")
    route = config["routes"][0]
    route["signature"] = {"keys": [ADOBE_KEY, OLD_KEY, NEW_KEY]}  # sha1, X-Signature
    config["routes"] += [
        {**route, "path": "/adobe-example", "payload": "none", "content_type": "text/plain"},
        {**route, "path": "/s2s", "methods": ["GET"], "auth": "signature", "scope": None},
        {**route, "path": "/signed-only", "auth": "signature", "scope": None},
    ]
    return await start(write_config(config)), url


async def backend_requests(session: aiohttp.ClientSession, url: str) -> int:
    async with session.get(url + "/_stats") as response:
        return int((await response.json())["requests"])


async def test_adobes_sha1_example_verifies(signed: tuple[RunningGateway, str],
                                            session: aiohttp.ClientSession) -> None:
    gateway, _ = signed
    port = gateway.ports["https"]
    token = await fetch_token(session, port)
    for signature, status in ((ADOBE_SIGNATURE, 400), ("+wFdR/afZNoVqtGl8/e1KJ4ykPA=", 401)):
        async with session.post(f"https://localhost:{port}/adobe-example", data=ADOBE_BODY,
                                headers={"Authorization": f"Bearer {token}",
                                         "Content-Type": "text/plain",
                                         "X-Signature": signature}) as response:
            answer = await response.json()
        # Adobe's example body is not JSON: past the signature, the payload stage refuses
        # it (400). Only a wrong signature is 401.
        assert response.status == status, answer
        assert answer["error"] == ("invalid_payload" if status == 400 else "invalid_token")


async def test_a_push_signed_as_adobe_signs_reaches_the_backend_and_a_wrong_one_never_does(
        signed: tuple[RunningGateway, str], session: aiohttp.ClientSession) -> None:
    gateway, url = signed
    port = gateway.ports["https"]
    token = await fetch_token(session, port)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    wrong = sign("not-a-configured-key", IRIS_SHAPED_PUSH)
    cases = [([wrong], 401), ([], 401), ([sign(NEW_KEY, IRIS_SHAPED_PUSH)], 200),
             ([wrong, sign(ADOBE_KEY, IRIS_SHAPED_PUSH)], 200)]
    for values, status in cases:
        async with session.post(f"https://localhost:{port}/segments/aam", data=IRIS_SHAPED_PUSH,
                                headers=[*headers.items(), *(("X-Signature", v) for v in values)],
                                ) as response:
            assert response.status == status, values
    assert await backend_requests(session, url) == 2  # the two 401s never reached it
    metrics = await admin_metrics(gateway.ports["admin"])
    assert metrics[("gateway_auth_failures_total", (("reason", "invalid_signature"),))] == 2


async def test_a_get_is_signed_over_its_path_and_query(
        signed: tuple[RunningGateway, str], session: aiohttp.ClientSession) -> None:
    gateway, url = signed
    port = gateway.ports["https"]
    target = "/s2s?sids=1,2,3&uuid=51880347210963314271938566402175593301"
    good = sign(OLD_KEY, target.encode())
    body = b'{"Users": [{"AAM_UUID": "1", "Segments": []}]}'
    # No bearer token: this route is signed, not OAuth-protected.
    async with session.get(f"https://localhost:{port}{target}", data=body,
                           headers={"X-Signature": good, "Content-Type": "application/json"},
                           ) as response:
        assert response.status == 200, await response.text()
    async with session.get(f"https://localhost:{port}{target.replace('1,2,3', '1,2,4')}",
                           data=body, headers={"X-Signature": good,
                                               "Content-Type": "application/json"}) as response:
        assert response.status == 401
    async with session.get(url + "/_stats") as response:
        stats = await response.json()
    assert stats["requests"] == 1 and stats["last"]["query"] == target.split("?", 1)[1]


async def test_auth_signature_needs_no_bearer_token_and_forwards_no_identity(
        signed: tuple[RunningGateway, str], session: aiohttp.ClientSession) -> None:
    gateway, url = signed
    address = f"https://localhost:{gateway.ports['https']}/signed-only"
    async with session.post(address, data=IRIS_SHAPED_PUSH, headers={
            "Content-Type": "application/json", "X-Gateway-Client-Id": "spoofed",
            "X-Signature": sign(NEW_KEY, IRIS_SHAPED_PUSH)}) as response:
        assert response.status == 200
    async with session.post(address, data=IRIS_SHAPED_PUSH,
                            headers={"Content-Type": "application/json"}) as response:
        assert response.status == 401
    async with session.get(url + "/_stats") as response:
        stats = await response.json()
    assert stats["requests"] == 1
    assert "X-Gateway-Client-Id" not in stats["last"]["headers"]
