"""The OAuth and JOSE clients partners already run, with their defaults, against the real
gateway over real TLS (docs/clients.md): Authlib (requests and httpx, the latter from the
RFC 8414 metadata alone), requests-oauthlib (Basic, and body credentials for a client that
enables them), oauthlib's and Authlib's metadata validators, and three JOSE verifiers
(joserfc, jwcrypto, PyJWT's PyJWKClient) reading the served JWK Set. Sync clients run in a
thread: the gateway serves on this test's event loop."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
import requests
from aiohttp import web
from authlib.deprecate import AuthlibDeprecationWarning
from authlib.integrations.requests_client import OAuth2Session as AuthlibSession
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from joserfc import jwt as jose_jwt
from joserfc.jwk import KeySet as JoseKeySet
from jwcrypto import jwk as jwcrypto_jwk
from jwcrypto import jwt as jwcrypto_jwt
from oauthlib.oauth2 import BackendApplicationClient, RequestValidator
from oauthlib.oauth2.rfc6749.endpoints import (
    IntrospectEndpoint,
    MetadataEndpoint,
    RevocationEndpoint,
    TokenEndpoint,
)
from oauthlib.oauth2.rfc6749.grant_types import ClientCredentialsGrant
from oauthlib.oauth2.rfc6749.tokens import BearerToken
from requests_oauthlib import OAuth2Session

from gateway.config import Settings
from gateway.serve.server import RunningGateway

from e2e_harness import AUDIENCE, CLIENT_ID, CLIENT_SECRET, base_config

with warnings.catch_warnings():
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client

POSTER = "poster"  # a client with client_secret_post: true


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def served(cert_dir: Path, signing_keys: dict[str, Path], secret_hash: str,
                 backend: tuple[str, web.Application],
                 write_config: Callable[[dict[str, Any]], Settings],
                 start: Callable[[Settings], Awaitable[RunningGateway]]) -> str:
    """The gateway on a fixed port whose issuer is its own address, so that a client
    following the metadata reaches it; the base URL."""
    port = _free_port()
    config = base_config(cert_dir, signing_keys, secret_hash, backend[0] + "/segments/aam")
    config["server"]["port"] = port
    config["tokens"]["issuer"] = f"https://localhost:{port}"
    config["clients"].append({"client_id": POSTER, "secret_hash": secret_hash,
                              "client_secret_post": True, "scopes": ["segments:write"]})
    await start(write_config(config))
    return f"https://localhost:{port}"


async def _json(url: str, context: ssl.SSLContext) -> dict[str, Any]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as client, \
            client.get(url) as response:
        assert response.status == 200
        return dict(json.loads(await response.read()))


def _check_claims(claims: dict[str, Any], base: str, client_id: str = CLIENT_ID) -> None:
    assert claims["iss"] == base and claims["aud"] == AUDIENCE
    assert claims["client_id"] == claims["sub"] == client_id
    assert claims["scope"] == "segments:write"


async def test_metadata_passes_authlib_and_oauthlib_validators(
        served: str, client_ssl_ctx: ssl.SSLContext) -> None:
    document = await _json(served + "/.well-known/oauth-authorization-server", client_ssl_ctx)
    AuthorizationServerMetadata(document).validate()  # raises ValueError on any claim
    validator = RequestValidator()
    endpoints = [TokenEndpoint("client_credentials", BearerToken(validator),
                               {"client_credentials": ClientCredentialsGrant(validator)}),
                 RevocationEndpoint(validator), IntrospectEndpoint(validator)]
    claims = MetadataEndpoint(endpoints, claims=document, raise_errors=True).claims
    assert claims == document  # oauthlib found nothing missing to default
    # Nothing claimed that the server does not do: no authorization endpoint, so no
    # response type that issues anything there, and only the client authentications
    # the configured clients can use.
    assert "authorization_endpoint" not in document
    assert document["response_types_supported"] == ["none"]
    assert document["grant_types_supported"] == ["client_credentials"]
    assert document["token_endpoint_auth_methods_supported"] == ["client_secret_basic",
                                                                 "client_secret_post"]


async def test_authlib_httpx_from_the_metadata_alone(served: str,
                                                     client_ssl_ctx: ssl.SSLContext) -> None:
    document = await _json(served + "/.well-known/oauth-authorization-server", client_ssl_ctx)
    async with AsyncOAuth2Client(CLIENT_ID, CLIENT_SECRET, verify=client_ssl_ctx) as client:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Authlib's own deprecation notices
            token = await client.fetch_token(document["token_endpoint"],
                                             grant_type="client_credentials")
    jwks = await _json(document["jwks_uri"], client_ssl_ctx)
    decoded = jose_jwt.decode(token["access_token"], JoseKeySet.import_key_set(jwks),
                              algorithms=["ES256"])
    assert decoded.header["typ"] == "at+jwt"
    _check_claims(decoded.claims, served)


async def test_authlib_requests_and_jwcrypto(served: str, cert_dir: Path,
                                             client_ssl_ctx: ssl.SSLContext) -> None:
    def fetch() -> dict[str, Any]:
        with AuthlibSession(CLIENT_ID, CLIENT_SECRET,
                            token_endpoint_auth_method="client_secret_basic") as session:
            return dict(session.fetch_token(served + "/oauth2/token",
                                            grant_type="client_credentials",
                                            verify=str(cert_dir / "ca.crt")))

    token = await asyncio.to_thread(fetch)
    jwks = await _json(served + "/.well-known/jwks.json", client_ssl_ctx)
    verified = jwcrypto_jwt.JWT(jwt=token["access_token"],
                                key=jwcrypto_jwk.JWKSet.from_json(json.dumps(jwks)),
                                algs=["ES256"], expected_type="JWS")
    _check_claims(json.loads(verified.claims), served)


async def test_requests_oauthlib_basic_and_pyjwkclient(served: str, cert_dir: Path,
                                                       client_ssl_ctx: ssl.SSLContext) -> None:
    def fetch() -> dict[str, Any]:
        session = OAuth2Session(client=BackendApplicationClient(client_id=CLIENT_ID))
        return dict(session.fetch_token(served + "/oauth2/token", client_id=CLIENT_ID,
                                        client_secret=CLIENT_SECRET,
                                        verify=str(cert_dir / "ca.crt")))

    token = await asyncio.to_thread(fetch)

    def verify() -> dict[str, Any]:
        keys = jwt.PyJWKClient(served + "/.well-known/jwks.json", ssl_context=client_ssl_ctx)
        key = keys.get_signing_key_from_jwt(token["access_token"])
        return dict(jwt.decode(token["access_token"], key.key, algorithms=["ES256"],
                               audience=AUDIENCE, issuer=served))

    _check_claims(await asyncio.to_thread(verify), served)


async def test_requests_oauthlib_body_credentials(served: str, cert_dir: Path) -> None:
    """``include_client_id=True`` sends client_id and client_secret in the body: accepted
    for a client with ``client_secret_post: true``; refused for any other with words that
    say to use Basic, the same whether the client exists or not."""
    def post(client_id: str) -> requests.Response:
        # What requests-oauthlib's include_client_id=True puts in the body.
        body = BackendApplicationClient(client_id=client_id).prepare_request_body(
            include_client_id=True, client_secret=CLIENT_SECRET)
        return requests.post(served + "/oauth2/token", data=body, timeout=30,
                             verify=str(cert_dir / "ca.crt"),
                             headers={"Content-Type": "application/x-www-form-urlencoded"})

    def fetch() -> dict[str, Any]:
        session = OAuth2Session(client=BackendApplicationClient(client_id=POSTER))
        return dict(session.fetch_token(served + "/oauth2/token", client_id=POSTER,
                                        client_secret=CLIENT_SECRET, include_client_id=True,
                                        verify=str(cert_dir / "ca.crt")))

    assert (await asyncio.to_thread(fetch))["token_type"] == "Bearer"
    known, unknown = await asyncio.gather(asyncio.to_thread(post, CLIENT_ID),
                                          asyncio.to_thread(post, "nobody"))
    assert known.status_code == unknown.status_code == 401
    assert known.json() == unknown.json()
    assert known.json()["error"] == "invalid_client"
    assert "HTTP Basic (client_secret_basic)" in known.json()["error_description"]
    assert "client_secret_post" in known.json()["error_description"]


async def test_openid_configuration_404_is_no_oauth_error(
        served: str, client_ssl_ctx: ssl.SSLContext) -> None:
    """openid-client's default discovery asks for /.well-known/openid-configuration and
    reads an ``error`` member in the answer as the server's OAuth error."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_ssl_ctx)) as c, \
            c.get(served + "/.well-known/openid-configuration") as response:
        assert response.status == 404
        body = json.loads(await response.read())
    assert "error" not in body
    assert "/.well-known/oauth-authorization-server" in body["error_description"]
