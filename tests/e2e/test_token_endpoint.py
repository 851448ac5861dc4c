"""The token endpoint over real TLS sockets (docs/adobe.md): Adobe's sample token
request byte for byte, its spaced Content-Type variant, and Authlib's OAuth 2.0 client; the token is
then checked by joserfc against the served JWK Set."""

from __future__ import annotations

import asyncio
import gzip
import json
import ssl
import warnings
from typing import Any

import aiohttp
import pytest
from authlib.deprecate import AuthlibDeprecationWarning
from joserfc import jwt as jose_jwt
from joserfc.jwk import KeySet as JoseKeySet

from gateway.serve.server import RunningGateway

from e2e_harness import AUDIENCE, CLIENT_ID, CLIENT_SECRET, ISSUER, VECTORS

with warnings.catch_warnings():
    # Authlib announces at import that its httpx integration moves to httpx2; not ours.
    # (authlib.deprecate installs an "always" filter when first imported, hence its own
    # import before this filter.)
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client

SEED_CONTENT_TYPE = b"Content-Type: application/x-www-form-urlencoded;charset=UTF-8\r\n"
SPACED_CONTENT_TYPE = b"Content-Type: application/x-www-form-urlencoded ; charset=UTF-8\r\n"


async def exchange(port: int, context: ssl.SSLContext,
                   request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` as it is over TLS; the status, headers and body of the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context,
                                                   server_hostname="localhost")
    try:
        writer.write(request)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in filter(None, lines):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers["content-length"]))
    finally:
        writer.close()
        await writer.wait_closed()
    return int(status_line.split()[1]), headers, body


async def check_token(session: aiohttp.ClientSession, port: int, token: str) -> None:
    """joserfc, an independent JOSE library, verifies the token with the served JWK Set."""
    async with session.get(f"https://localhost:{port}/.well-known/jwks.json") as response:
        jwks = json.loads(await response.read())
    decoded = jose_jwt.decode(token, JoseKeySet.import_key_set(jwks), algorithms=["ES256"])
    assert decoded.header["typ"] == "at+jwt"
    claims = decoded.claims
    assert claims["iss"] == ISSUER and claims["aud"] == AUDIENCE
    assert claims["client_id"] == claims["sub"] == CLIENT_ID
    assert claims["scope"] == "segments:write"


@pytest.mark.parametrize("content_type", [SEED_CONTENT_TYPE, SPACED_CONTENT_TYPE],
                         ids=["sample", "spaced"])
async def test_adobes_sample_token_request_byte_for_byte(gateway: RunningGateway,
                                                         client_ssl_ctx: ssl.SSLContext,
                                                         session: aiohttp.ClientSession,
                                                         content_type: bytes) -> None:
    request = (VECTORS / "token-request.http").read_bytes()
    assert request.count(SEED_CONTENT_TYPE) == 1
    request = request.replace(SEED_CONTENT_TYPE, content_type)
    port = gateway.ports["https"]
    status, headers, body = await exchange(port, client_ssl_ctx, request)
    assert status == 200, body
    assert headers["content-encoding"] == "gzip"
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert headers["cache-control"] == "no-store" and headers["pragma"] == "no-cache"
    document: dict[str, Any] = json.loads(gzip.decompress(body))
    assert document["token_type"] == "Bearer" and document["scope"] == "segments:write"
    assert document["expires_in"] > 0
    await check_token(session, port, document["access_token"])


async def test_authlib_client_secret_basic(gateway: RunningGateway,
                                           client_ssl_ctx: ssl.SSLContext,
                                           session: aiohttp.ClientSession) -> None:
    port = gateway.ports["https"]
    async with AsyncOAuth2Client(CLIENT_ID, CLIENT_SECRET, verify=client_ssl_ctx,
                                 token_endpoint_auth_method="client_secret_basic") as client:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Authlib's own deprecation notices
            token = await client.fetch_token(f"https://localhost:{port}/oauth2/token",
                                             grant_type="client_credentials")
    assert token["token_type"] == "Bearer" and token["scope"] == "segments:write"
    await check_token(session, port, token["access_token"])


async def test_authlib_wrong_secret_is_invalid_client(gateway: RunningGateway,
                                                      client_ssl_ctx: ssl.SSLContext) -> None:
    port = gateway.ports["https"]
    async with AsyncOAuth2Client(CLIENT_ID, "wrong", verify=client_ssl_ctx,
                                 token_endpoint_auth_method="client_secret_basic") as client:
        response = await client.post(f"https://localhost:{port}/oauth2/token",
                                     data={"grant_type": "client_credentials"},
                                     auth=(CLIENT_ID, "wrong"))
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic realm=")
    assert response.json()["error"] == "invalid_client"
