"""Adobe Experience Platform through the real gateway over real TLS (docs/aep.md): AEP's token
requests byte for byte in each documented shape, answered with the AEP client's own 24 h
``expires_in`` beside IRIS's hour; a per-route body bound (a 3 MB AEP batch taken on its
route while the IRIS route still refuses more than 1 MiB, declared, chunked or gzip); a
10,000-profile batch through the shipped schema to a recording backend process, byte for
byte; ``gateway loadtest --profile aep`` with every push answered 200; and a reload that
changes a route's bound and a client's lifetime."""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import io
import json
import random
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
import yaml

from gateway.config import Settings
from gateway.config.hashes import hash_secret
from gateway.serve.server import RunningGateway
from gateway.tools.aep_payloads import make_aep_batch_bytes
from gateway.tools.loadtest_cli import add_arguments, run
from gateway.tools.payloads import make_payload_bytes

from e2e_harness import CLIENT_ID, CLIENT_SECRET, base_config, basic, fetch_token
from proc_harness import CapturedProcess
from spool_harness import backend_process

Start = Callable[[Settings], Awaitable[RunningGateway]]
SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "schemas" / "aep-profiles.json"
AEP_ID = "aep-destination"
# Characters a form body must encode, so a gateway that does not decode them fails.
AEP_SECRET = "aep s3cret/with+odd=chars&more%"
MIB = 1 << 20
DAY = 86400


@pytest.fixture(scope="module")
def aep_hash() -> str:
    return hash_secret(AEP_SECRET)


@pytest.fixture
async def aep(cert_dir: Path, signing_keys: dict[str, Path], secret_hash: str, aep_hash: str,
              tmp_path: Path, processes: list[CapturedProcess],
              write_config: Callable[[dict[str, Any]], Settings], start: Start,
              ) -> tuple[RunningGateway, Path]:
    """The gateway with IRIS's route (1 MiB, the server's bound) and an AEP route (the
    shipped schema, 8 MiB of its own), both to one backend process that records."""
    record = tmp_path / "received.jsonl"
    url, _ = await backend_process(processes, record)
    config = base_config(cert_dir, signing_keys, secret_hash, url + "/segments/aam")
    config["server"]["max_body_bytes"] = MIB
    config["clients"].append({"client_id": AEP_ID, "secret_hash": aep_hash,
                              "client_secret_post": True, "ttl_seconds": DAY,
                              "scopes": ["segments:write", "segments:read"]})
    config["routes"].append({"path": "/segments/aep", "methods": ["POST"],
                             "upstream": url + "/segments/aep", "scope": "segments:write",
                             "payload": {"schema": str(SCHEMA)}, "max_body_bytes": 8 * MIB})
    return await start(write_config(config)), record


async def exchange(port: int, request: bytes, context: ssl.SSLContext,
                   body_follows: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """Exact bytes over TLS; (status, headers, body inflated from gzip). With ``request``
    holding only a head, the answer is read before ``body_follows`` is sent."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context,
                                                   server_hostname="localhost")
    try:
        writer.write(request)
        await writer.drain()
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        status, *lines = head.strip().split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (x.split(":", 1) for x in lines)}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        if body_follows:
            writer.write(body_follows)
    finally:
        writer.close()
    if headers.get("content-encoding") == "gzip":
        body = gzip.decompress(body)
    return int(status.split()[1]), headers, body


def http(head: list[str], body: bytes) -> bytes:
    return ("\r\n".join([*head, f"Content-Length: {len(body)}", "", ""])).encode() + body


def form(*pairs: str) -> bytes:
    """A body as ``curl --data-urlencode`` and Pebble's formUrlEncode write it."""
    return "&".join(f"{k}={quote(v, safe='')}" for k, v in zip(pairs[::2], pairs[1::2],
                                                               strict=True)).encode()


# The HTTP API destination's "Basic Authorization" sends the pair URL-encoded first.
BASIC_ENCODED = base64.b64encode(
    f"{quote(AEP_ID, safe='')}:{quote(AEP_SECRET, safe='')}".encode()).decode()
SHAPES = {
    # HTTP API destination, "Body Form Encoded"; Destination SDK's formUrlEncode template.
    "body form": (["Content-Type: application/x-www-form-urlencoded"],
                  form("grant_type", "client_credentials", "client_id", AEP_ID,
                       "client_secret", AEP_SECRET), "segments:read segments:write"),
    "body form with scope": (["Content-Type: application/x-www-form-urlencoded"],
                             form("grant_type", "client_credentials", "client_id", AEP_ID,
                                  "client_secret", AEP_SECRET, "scope", "segments:write"),
                             "segments:write"),
    "body form with two scopes, + for the space": (
        ["Content-Type: application/x-www-form-urlencoded"],
        b"grant_type=client_credentials&client_id=" + AEP_ID.encode()
        + b"&client_secret=aep+s3cret%2Fwith%2Bodd%3Dchars%26more%25"
        + b"&scope=segments%3Awrite+segments%3Aread", "segments:write segments:read"),
    # HTTP API destination, "Basic Authorization" (its curl example's header spelling).
    "basic": ([f"Authorization: Basic {BASIC_ENCODED}",
               "Content-type: application/x-www-form-urlencoded; charset=UTF-8"],
              b"grant_type=client_credentials", "segments:read segments:write"),
    "basic with scope": ([f"Authorization: Basic {BASIC_ENCODED}",
                          "Content-type: application/x-www-form-urlencoded; charset=UTF-8"],
                         b"grant_type=client_credentials&scope=segments%3Awrite",
                         "segments:write"),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
async def test_aeps_token_requests_get_its_own_lifetime(
        aep: tuple[RunningGateway, Path], client_ssl_ctx: ssl.SSLContext, shape: str) -> None:
    gateway, _ = aep
    headers, body, scope = SHAPES[shape]
    request = http(["POST /oauth2/token HTTP/1.1", "Host: localhost", *headers,
                    "Connection: close"], body)
    status, answer_headers, answer = await exchange(gateway.ports["https"], request,
                                                    client_ssl_ctx)
    assert status == 200, answer
    token = json.loads(answer)
    assert token["token_type"] == "Bearer" and token["expires_in"] == DAY
    assert sorted(token["scope"].split()) == sorted(scope.split())
    assert answer_headers["cache-control"] == "no-store"
    # The token works on the AEP route.
    batch = make_aep_batch_bytes(3, random.Random(1))
    push = http(["POST /segments/aep HTTP/1.1", "Host: localhost",
                 f"Authorization: Bearer {token['access_token']}",
                 "Content-Type: application/json", "Connection: close"], batch)
    status, _, answer = await exchange(gateway.ports["https"], push, client_ssl_ctx)
    assert status == 200, answer


async def test_iris_keeps_the_sections_hour_beside_aep(
        aep: tuple[RunningGateway, Path], session: aiohttp.ClientSession) -> None:
    gateway, _ = aep
    token = await fetch_token(session, gateway.ports["https"])
    async with session.post(f"https://localhost:{gateway.ports['https']}/oauth2/introspect",
                            data={"token": token},
                            headers={"Authorization": basic(CLIENT_ID, CLIENT_SECRET)}) as r:
        claims = await r.json()
    assert claims["active"] and claims["exp"] - claims["iat"] == 3600


@pytest.fixture
async def tokens(aep: tuple[RunningGateway, Path], session: aiohttp.ClientSession
                 ) -> AsyncIterator[tuple[str, str]]:
    """(IRIS's token, AEP's token)."""
    gateway, _ = aep
    iris = await fetch_token(session, gateway.ports["https"])
    async with session.post(f"https://localhost:{gateway.ports['https']}/oauth2/token",
                            data={"grant_type": "client_credentials", "client_id": AEP_ID,
                                  "client_secret": AEP_SECRET}) as response:
        assert response.status == 200
        yield iris, (await response.json())["access_token"]


def received(record: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in record.read_text().splitlines()] \
        if record.exists() else []


async def post(session: aiohttp.ClientSession, gateway: RunningGateway, path: str,
               token: str, data: Any, **headers: str) -> tuple[int, dict[str, Any]]:
    if isinstance(data, bytes):
        data = io.BytesIO(data)  # aiohttp warns on bytes over 1 MiB; this sends the same
    async with session.post(f"https://localhost:{gateway.ports['https']}{path}", data=data,
                            headers={"Authorization": f"Bearer {token}",
                                     "Content-Type": "application/json", **headers}) as r:
        return r.status, await r.json()


async def test_a_3_mb_batch_on_its_route_while_iris_still_refuses_over_1_mib(
        aep: tuple[RunningGateway, Path], session: aiohttp.ClientSession,
        client_ssl_ctx: ssl.SSLContext, tokens: tuple[str, str]) -> None:
    gateway, record = aep
    iris, aep_token = tokens
    batch = make_aep_batch_bytes(8500, random.Random(2))
    assert 3_000_000 < len(batch) < 8 * MIB
    status, answer = await post(session, gateway, "/segments/aep", aep_token, batch)
    assert status == 200, answer
    assert received(record)[-1]["body"].encode() == batch

    big_iris = make_payload_bytes(4000, random.Random(3))
    assert MIB < len(big_iris) < 8 * MIB
    # Declared: refused on the head alone (only the head is sent).
    status, answer = await refused_on_head(gateway, "/segments/aam", iris, len(big_iris),
                                           client_ssl_ctx)
    assert (status, answer["error"]) == (413, "payload_too_large")

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked, 1 byte over
        over = big_iris[:MIB + 1]
        for start in range(0, len(over), 65536):
            yield over[start:start + 65536]

    status, answer = await post(session, gateway, "/segments/aam", iris, chunks())
    assert (status, answer["error"]) == (413, "payload_too_large")
    # gzip: the bound is on the inflated body, each route's own.
    status, answer = await post(session, gateway, "/segments/aam", iris, gzip.compress(big_iris),
                                **{"Content-Encoding": "gzip"})
    assert (status, answer["error"]) == (413, "payload_too_large")
    status, answer = await post(session, gateway, "/segments/aep", aep_token,
                                gzip.compress(batch), **{"Content-Encoding": "gzip"})
    assert status == 200, answer
    assert received(record)[-1]["body"].encode() == batch
    assert len(received(record)) == 2  # nothing refused reached the backend


async def refused_on_head(gateway: RunningGateway, path: str, token: str, length: int,
                          context: ssl.SSLContext) -> tuple[int, dict[str, Any]]:
    """Send only a head declaring ``length`` bytes: an answer proves the gateway did not
    wait for the body."""
    head = (f"POST {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n").encode()
    status, _, answer = await asyncio.wait_for(
        exchange(gateway.ports["https"], head, context), timeout=30)
    return status, json.loads(answer)


async def test_over_the_routes_own_bound_is_refused_before_the_body_is_sent(
        aep: tuple[RunningGateway, Path], client_ssl_ctx: ssl.SSLContext,
        tokens: tuple[str, str]) -> None:
    gateway, record = aep
    _, aep_token = tokens
    status, answer = await refused_on_head(gateway, "/segments/aep", aep_token, 8 * MIB + 1,
                                           client_ssl_ctx)
    assert (status, answer["error"]) == (413, "payload_too_large")
    assert received(record) == []


async def test_a_10000_profile_batch_reaches_the_backend_byte_for_byte(
        aep: tuple[RunningGateway, Path], session: aiohttp.ClientSession,
        tokens: tuple[str, str]) -> None:
    gateway, record = aep
    _, aep_token = tokens
    batch = make_aep_batch_bytes(10_000, random.Random(10_000))
    status, answer = await post(session, gateway, "/segments/aep", aep_token, batch)
    assert status == 200, answer
    (arrived,) = received(record)
    assert arrived["path"] == "/segments/aep" and arrived["body_bytes"] == len(batch)
    assert hashlib.sha256(arrived["body"].encode()).digest() == hashlib.sha256(batch).digest()
    assert arrived["headers"]["X-Gateway-Client-Id"] == AEP_ID
    # One profile broken deep in the batch: refused with its path, never forwarded.
    document = json.loads(batch)
    next(iter(document["profiles"][9876]["segmentMembership"]["ups"].values()))["status"] = "x"
    status, answer = await post(session, gateway, "/segments/aep", aep_token,
                                json.dumps(document).encode())
    assert status == 400 and answer["error"] == "invalid_payload"
    assert answer["error_description"].startswith("profiles[9876].segmentMembership.ups.")
    assert len(received(record)) == 1


async def test_loadtest_profile_aep_gets_every_push_answered_200(
        aep: tuple[RunningGateway, Path], cert_dir: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    gateway, record = aep
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args([
        f"https://localhost:{gateway.ports['https']}/segments/aep", "--profile", "aep",
        "--client-id", AEP_ID, "--secret", AEP_SECRET, "--profiles-per-request", "200",
        "--requests", "40", "--concurrency", "4", "--duration", "60",
        "--ca", str(cert_dir / "ca.crt"), "--json"])
    # run() owns its event loop, so it runs in a thread while this loop serves the gateway.
    assert await asyncio.to_thread(run, args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["profile"] == "aep" and doc["users_per_request"] == 200
    assert doc["status_counts"] == {"200": 40} and doc["success_rate"] == 1.0
    assert doc["errors"] == {} and doc["token_fetches"] == 1
    arrived = received(record)
    assert len(arrived) == 40
    assert all(len(json.loads(a["body"])["profiles"]) == 200 for a in arrived)


async def test_a_reload_applies_a_routes_bound_and_a_clients_lifetime(
        aep: tuple[RunningGateway, Path], session: aiohttp.ClientSession,
        client_ssl_ctx: ssl.SSLContext, tokens: tuple[str, str], tmp_path: Path) -> None:
    gateway, record = aep
    _, aep_token = tokens
    batch = make_aep_batch_bytes(6500, random.Random(5))
    assert 2 * MIB < len(batch) < 8 * MIB
    status, answer = await post(session, gateway, "/segments/aep", aep_token, batch)
    assert status == 200, answer
    path = tmp_path / "config.yaml"
    config = yaml.safe_load(path.read_text())
    config["routes"][1]["max_body_bytes"] = 2 * MIB
    config["clients"][-1]["ttl_seconds"] = 7200
    path.write_text(yaml.safe_dump(config))
    assert await gateway.reload()
    status, answer = await refused_on_head(gateway, "/segments/aep", aep_token, len(batch),
                                           client_ssl_ctx)
    assert (status, answer["error"]) == (413, "payload_too_large")
    assert len(received(record)) == 1
    async with session.post(f"https://localhost:{gateway.ports['https']}/oauth2/token",
                            data={"grant_type": "client_credentials", "client_id": AEP_ID,
                                  "client_secret": AEP_SECRET}) as response:
        assert (await response.json())["expires_in"] == 7200
