"""The protected route end to end (docs/architecture.md): real TLS, the real sample backend.

Accepted pushes arrive byte for byte without the token; every refusal answers with the
right status and challenge, and the backend provably never sees a refused request.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import hmac
import json
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization

from gateway.config import Settings
from gateway.serve.server import RunningGateway

from e2e_harness import AUDIENCE, ISSUER, VECTORS, base_config, fetch_token

SEED_PAYLOAD = (VECTORS / "segment-payload.json").read_bytes()
Backend = tuple[str, web.Application]


async def _stats(backend: Backend) -> dict[str, Any]:
    async with aiohttp.ClientSession() as client, client.get(backend[0] + "/_stats") as r:
        return dict(await r.json())


async def _raw(port: int, request: bytes, context: ssl.SSLContext) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context,
                                                   server_hostname="localhost")
    writer.write(request)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    body = await reader.readexactly(length)
    writer.close()
    return int(head.split(b" ")[1]), body


def _push_headers(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json", **extra}


async def test_adobes_sample_get_with_body_arrives_byte_for_byte_without_the_token(
        gateway: RunningGateway, backend: Backend, session: aiohttp.ClientSession,
        client_ssl_ctx: ssl.SSLContext) -> None:
    token = await fetch_token(session, gateway.ports["https"])
    request = (VECTORS / "segment-request.http").read_bytes().replace(b"{TOKEN}", token.encode())
    status, body = await _raw(gateway.ports["https"], request, client_ssl_ctx)
    assert status == 200, body
    last = (await _stats(backend))["last"]
    assert last["method"] == "GET"
    assert last["body_bytes"] == len(SEED_PAYLOAD)
    assert "Authorization" not in last["headers"]
    assert token not in json.dumps(last)
    assert last["headers"]["X-Gateway-Client-Id"] == "aam"
    assert last["headers"]["X-Gateway-Scope"] == "segments:write"
    assert last["headers"]["X-Forwarded-Proto"] == "https"
    names = {name.lower() for name in last["headers"]}
    assert "x-request-id" in names
    assert last["headers"]["User-Agent"] == "Adobe Audience Manager Iris"


async def test_post_body_is_byte_for_byte_and_spoofed_identity_is_replaced(
        gateway: RunningGateway, backend: Backend, session: aiohttp.ClientSession) -> None:
    token = await fetch_token(session, gateway.ports["https"])
    async with session.post(
            f"https://localhost:{gateway.ports['https']}/segments/aam", data=SEED_PAYLOAD,
            headers=_push_headers(token, **{"X-Gateway-Client-Id": "admin",
                                            "X-Gateway-Scope": "everything"})) as response:
        assert response.status == 200
    last = (await _stats(backend))["last"]
    assert last["method"] == "POST" and last["body_bytes"] == len(SEED_PAYLOAD)
    assert last["headers"]["X-Gateway-Client-Id"] == "aam"
    assert last["headers"]["X-Gateway-Scope"] == "segments:write"


async def test_gzip_body_is_forwarded_inflated(gateway: RunningGateway, backend: Backend,
                                               session: aiohttp.ClientSession) -> None:
    token = await fetch_token(session, gateway.ports["https"])
    async with session.post(
            f"https://localhost:{gateway.ports['https']}/segments/aam",
            data=gzip.compress(SEED_PAYLOAD),
            headers=_push_headers(token, **{"Content-Encoding": "gzip"})) as response:
        assert response.status == 200
    last = (await _stats(backend))["last"]
    assert last["body_bytes"] == len(SEED_PAYLOAD)
    assert "Content-Encoding" not in last["headers"]


def _key_pem(path: Path) -> bytes:
    return path.read_bytes()


def _public_pem(path: Path) -> bytes:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    return key.public_key().public_bytes(serialization.Encoding.PEM,  # type: ignore[union-attr]
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "aam", "client_id": "aam",
              "scope": "segments:write", "iat": now, "exp": now + 600, "jti": "j-1"}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(key: Path, claims: dict[str, Any], **header: Any) -> str:
    headers = {"typ": "at+jwt", "kid": "k1", **header}
    return jwt.encode(claims, _key_pem(key), algorithm="ES256", headers=headers)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(claims: dict[str, Any], alg: str) -> str:
    header = {"alg": alg, "typ": "at+jwt", "kid": "k1"}
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}."


def _hs256_with_public_key(key: Path, claims: dict[str, Any]) -> str:
    header = {"alg": "HS256", "typ": "at+jwt", "kid": "k1"}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    mac = hmac.new(_public_pem(key), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


def _tampered(token: str) -> str:
    head, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["scope"] = "segments:write admin"
    return f"{head}.{_b64(json.dumps(claims).encode())}.{signature}"


REFUSALS: list[tuple[str, Callable[[Path, str], dict[str, str]], int, str | None]] = [
    ("missing", lambda k, t: {}, 401, 'Bearer realm="gateway"'),
    ("basic instead of bearer", lambda k, t: {"Authorization": "Basic YWFtOng="}, 401,
     'Bearer realm="gateway"'),
    ("malformed", lambda k, t: {"Authorization": "Bearer a b c"}, 400, "invalid_request"),
    ("tampered", lambda k, t: {"Authorization": f"Bearer {_tampered(t)}"}, 401,
     "invalid_token"),
    ("alg none", lambda k, t: {"Authorization": f"Bearer {_unsigned(_claims(), 'none')}"}, 401,
     "invalid_token"),
    ("HS256 keyed with the public key",
     lambda k, t: {"Authorization": f"Bearer {_hs256_with_public_key(k, _claims())}"}, 401,
     "invalid_token"),
    ("expired", lambda k, t: {"Authorization": "Bearer " + _sign(
        k, _claims(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600))}, 401,
     "invalid_token"),
    ("not yet valid", lambda k, t: {"Authorization": "Bearer " + _sign(
        k, _claims(nbf=int(time.time()) + 3600))}, 401, "invalid_token"),
    ("wrong iss", lambda k, t: {"Authorization": "Bearer " + _sign(
        k, _claims(iss="https://evil.example"))}, 401, "invalid_token"),
    ("wrong aud", lambda k, t: {"Authorization": "Bearer " + _sign(
        k, _claims(aud="another-api"))}, 401, "invalid_token"),
    ("wrong typ", lambda k, t: {"Authorization": "Bearer " + _sign(k, _claims(), typ="JWT")},
     401, "invalid_token"),
    ("unknown kid", lambda k, t: {"Authorization": "Bearer " + _sign(k, _claims(), kid="k9")},
     401, "invalid_token"),
    ("removed client", lambda k, t: {"Authorization": "Bearer " + _sign(
        k, _claims(sub="gone", client_id="gone"))}, 401, "invalid_token"),
    ("missing scope", lambda k, t: {"Authorization": "Bearer " + _sign(
        k, _claims(sub="reader", client_id="reader", scope="read"))}, 403, "insufficient_scope"),
    ("two tokens in one header", lambda k, t: {"Authorization": f"Bearer {t}, Bearer {t}"},
     400, "invalid_request"),
]


@pytest.mark.parametrize(("name", "make_headers", "status", "challenge"), REFUSALS,
                         ids=[r[0] for r in REFUSALS])
async def test_token_refusals_never_reach_the_backend(
        gateway: RunningGateway, backend: Backend, session: aiohttp.ClientSession,
        signing_keys: dict[str, Path], name: str,
        make_headers: Callable[[Path, str], dict[str, str]], status: int,
        challenge: str | None) -> None:
    token = await fetch_token(session, gateway.ports["https"])
    headers = {"Content-Type": "application/json", **make_headers(signing_keys["ES256"], token)}
    async with session.post(f"https://localhost:{gateway.ports['https']}/segments/aam",
                            data=SEED_PAYLOAD, headers=headers) as response:
        body = await response.json()
        assert response.status == status, body
        if challenge is not None:
            assert challenge in response.headers["WWW-Authenticate"]
        if name == "missing":
            assert "error=" not in response.headers["WWW-Authenticate"]
        assert token not in json.dumps(body)
        assert set(body) == {"error", "error_description"}
    assert (await _stats(backend))["requests"] == 0


async def test_duplicate_authorization_headers_are_invalid_request(
        gateway: RunningGateway, backend: Backend, session: aiohttp.ClientSession,
        client_ssl_ctx: ssl.SSLContext) -> None:
    token = await fetch_token(session, gateway.ports["https"])
    request = (b"POST /segments/aam HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               + f"Authorization: Bearer {token}\r\nAuthorization: Bearer {token}\r\n".encode()
               + f"Content-Length: {len(SEED_PAYLOAD)}\r\n\r\n".encode() + SEED_PAYLOAD)
    status, body = await _raw(gateway.ports["https"], request, client_ssl_ctx)
    assert status == 400 and json.loads(body)["error"] == "invalid_request"
    assert (await _stats(backend))["requests"] == 0


HEADER_REFUSALS: list[tuple[str, dict[str, str], bytes, int, str]] = [
    ("wrong media type", {"Content-Type": "text/plain"}, SEED_PAYLOAD, 415,
     "unsupported_media_type"),
    ("latin-1 charset", {"Content-Type": "application/json; charset=iso-8859-1"}, SEED_PAYLOAD,
     415, "unsupported_media_type"),
    ("brotli", {"Content-Type": "application/json", "Content-Encoding": "br"}, SEED_PAYLOAD,
     415, "unsupported_media_type"),
    ("too large", {"Content-Type": "application/json"}, b" " * 70000, 413, "payload_too_large"),
    ("gzip bomb", {"Content-Type": "application/json", "Content-Encoding": "gzip"},
     gzip.compress(b"[" + b" " * 50_000_000 + b"]"), 413, "payload_too_large"),
    ("invalid payload", {"Content-Type": "application/json"}, b'{"Users": []}', 400,
     "invalid_payload"),
    ("broken json", {"Content-Type": "application/json"}, b'{"Users": [', 400,
     "invalid_payload"),
]


@pytest.mark.parametrize(("name", "headers", "body", "status", "error"), HEADER_REFUSALS,
                         ids=[r[0] for r in HEADER_REFUSALS])
async def test_header_and_payload_refusals_never_reach_the_backend(
        gateway: RunningGateway, backend: Backend, session: aiohttp.ClientSession, name: str,
        headers: dict[str, str], body: bytes, status: int, error: str) -> None:
    token = await fetch_token(session, gateway.ports["https"])
    async with session.post(f"https://localhost:{gateway.ports['https']}/segments/aam",
                            data=body, headers={"Authorization": f"Bearer {token}",
                                                **headers}) as response:
        answer = await response.json()
        assert response.status == status, answer
        assert answer["error"] == error
    assert (await _stats(backend))["requests"] == 0


async def test_invalid_payload_names_the_json_path(gateway: RunningGateway,
                                                   session: aiohttp.ClientSession) -> None:
    token = await fetch_token(session, gateway.ports["https"])
    bad = json.loads(SEED_PAYLOAD)
    bad["Users"][0]["Segments"][0]["Status"] = "7"
    async with session.post(f"https://localhost:{gateway.ports['https']}/segments/aam",
                            json=bad, headers={"Authorization": f"Bearer {token}"}) as response:
        assert response.status == 400
        assert "Users[0].Segments[0].Status" in (await response.json())["error_description"]


Start = Callable[[Settings], Awaitable[RunningGateway]]


async def _gateway_with(write_config: Callable[[dict[str, Any]], Settings], start: Start,
                        cert_dir: Path, signing_keys: dict[str, Path], secret_hash: str,
                        upstream: str | list[str], **route: Any) -> RunningGateway:
    config = base_config(cert_dir, signing_keys, secret_hash, upstream)
    config["routes"][0].update(route)
    return await start(write_config(config))


async def test_signature_checked_when_configured(
        write_config: Callable[[dict[str, Any]], Settings], start: Start, cert_dir: Path,
        signing_keys: dict[str, Path], secret_hash: str, backend: Backend,
        session: aiohttp.ClientSession) -> None:
    running = await _gateway_with(write_config, start, cert_dir, signing_keys, secret_hash,
                                  backend[0] + "/segments/aam",
                                  signature={"header": "X-Signature", "algorithm": "sha256",
                                             "key": "shared-signing-key"})
    token = await fetch_token(session, running.ports["https"])
    url = f"https://localhost:{running.ports['https']}/segments/aam"
    good = hmac.new(b"shared-signing-key", SEED_PAYLOAD, hashlib.sha256).hexdigest()
    for signature, status in (("", 401), ("00" * 32, 401), (good, 200)):
        headers = _push_headers(token, **({"X-Signature": signature} if signature else {}))
        async with session.post(url, data=SEED_PAYLOAD, headers=headers) as response:
            assert response.status == status
    assert (await _stats(backend))["requests"] == 1


@pytest.mark.parametrize(("backend_status", "success_status", "expected"),
                         [(204, 200, 200), (202, 200, 200), (204, None, 204), (500, 200, 500),
                          (404, 200, 404)])
async def test_backend_status_mapping(
        write_config: Callable[[dict[str, Any]], Settings], start: Start, cert_dir: Path,
        signing_keys: dict[str, Path], secret_hash: str, backend: Backend,
        session: aiohttp.ClientSession, backend_status: int, success_status: int | None,
        expected: int) -> None:
    async with session.post(backend[0] + "/_control", json={"status": backend_status}) as r:
        assert r.status == 200
    running = await _gateway_with(write_config, start, cert_dir, signing_keys, secret_hash,
                                  backend[0] + "/segments/aam", success_status=success_status)
    token = await fetch_token(session, running.ports["https"])
    async with session.post(f"https://localhost:{running.ports['https']}/segments/aam",
                            data=SEED_PAYLOAD, headers=_push_headers(token)) as response:
        assert response.status == expected


async def test_backend_down_is_502_and_slow_is_504(
        write_config: Callable[[dict[str, Any]], Settings], start: Start, cert_dir: Path,
        signing_keys: dict[str, Path], secret_hash: str, backend: Backend,
        session: aiohttp.ClientSession) -> None:
    down = await _gateway_with(write_config, start, cert_dir, signing_keys, secret_hash,
                               "http://127.0.0.1:9/segments/aam")
    token = await fetch_token(session, down.ports["https"])
    async with session.post(f"https://localhost:{down.ports['https']}/segments/aam",
                            data=SEED_PAYLOAD, headers=_push_headers(token)) as response:
        assert response.status == 502
        assert (await response.json())["error"] == "bad_gateway"
    async with session.post(backend[0] + "/_control", json={"delay": 3}) as r:
        assert r.status == 200
    slow = await _gateway_with(write_config, start, cert_dir, signing_keys, secret_hash,
                               backend[0] + "/segments/aam", timeout_seconds=0.3)
    async with session.post(f"https://localhost:{slow.ports['https']}/segments/aam",
                            data=SEED_PAYLOAD, headers=_push_headers(token)) as response:
        assert response.status == 504
        assert (await response.json())["error"] == "gateway_timeout"


async def test_failover_to_the_next_upstream_on_connect_failure(
        write_config: Callable[[dict[str, Any]], Settings], start: Start, cert_dir: Path,
        signing_keys: dict[str, Path], secret_hash: str, backend: Backend,
        session: aiohttp.ClientSession) -> None:
    running = await _gateway_with(write_config, start, cert_dir, signing_keys, secret_hash,
                                  ["http://127.0.0.1:9/segments/aam",
                                   backend[0] + "/segments/aam"])
    token = await fetch_token(session, running.ports["https"])
    async with session.post(f"https://localhost:{running.ports['https']}/segments/aam",
                            data=SEED_PAYLOAD, headers=_push_headers(token)) as response:
        assert response.status == 200
    assert (await _stats(backend))["requests"] == 1


@pytest.mark.parametrize(("cidrs", "status"), [(["10.0.0.0/8"], 403), (["127.0.0.0/8"], 200)])
async def test_allowed_cidrs(
        write_config: Callable[[dict[str, Any]], Settings], start: Start, cert_dir: Path,
        signing_keys: dict[str, Path], secret_hash: str, backend: Backend,
        session: aiohttp.ClientSession, cidrs: list[str], status: int) -> None:
    config = base_config(cert_dir, signing_keys, secret_hash, backend[0] + "/segments/aam")
    config["clients"][0]["allowed_cidrs"] = cidrs
    running = await start(write_config(config))
    token = await fetch_token(session, running.ports["https"])
    async with session.post(f"https://localhost:{running.ports['https']}/segments/aam",
                            data=SEED_PAYLOAD, headers=_push_headers(token)) as response:
        assert response.status == status
        if status == 403:
            assert (await response.json())["error"] == "forbidden"
    assert (await _stats(backend))["requests"] == (1 if status == 200 else 0)


async def test_per_client_rate_limit_answers_429_with_retry_after(
        write_config: Callable[[dict[str, Any]], Settings], start: Start, cert_dir: Path,
        signing_keys: dict[str, Path], secret_hash: str, backend: Backend,
        session: aiohttp.ClientSession) -> None:
    config = base_config(cert_dir, signing_keys, secret_hash, backend[0] + "/segments/aam")
    config["clients"][0]["rate_limit"] = {"requests_per_second": 0.5, "burst": 2}
    running = await start(write_config(config))
    token = await fetch_token(session, running.ports["https"])
    statuses = []
    for _ in range(3):
        async with session.post(f"https://localhost:{running.ports['https']}/segments/aam",
                                data=SEED_PAYLOAD, headers=_push_headers(token)) as response:
            statuses.append(response.status)
            retry_after = response.headers.get("Retry-After")
    assert statuses == [200, 200, 429]
    assert retry_after is not None and int(retry_after) >= 1
    assert (await _stats(backend))["requests"] == 2
