"""POST /oauth2/token (RFC 6749 §4.4, §5.1, §5.2; docs/architecture.md) through aiohttp's test
client,
plus property tests of its pure parsers and the discovery documents."""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest
from aiohttp import web
from aiohttp.typedefs import Handler
from hypothesis import given
from hypothesis import strategies as st
from pytest_aiohttp import AiohttpClient

from gateway.config import ClientSettings, ServerSettings, Settings, TLSSettings, TokenSettings
from gateway.errors import GatewayError, InvalidRequestError, MethodNotAllowedError, render
from gateway.keys import RUNTIME
from gateway.oauth.token_endpoint import parse_form
from gateway.serve.oauth_routes import setup_oauth

from .conftest import SECRET, SEED_CREDENTIAL

FORM = "application/x-www-form-urlencoded"
SEED_HEADERS = {
    "User-Agent": "Adobe Audience Manager Iris",
    "Authorization": f"Basic {SEED_CREDENTIAL}",
    "Content-Type": f"{FORM};charset=UTF-8",
    "Accept-Encoding": "gzip",
}
GRANT = b"grant_type=client_credentials"


@web.middleware
async def render_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A stand-in for the app's error middleware: the project's one renderer."""
    try:
        return await handler(request)
    except GatewayError as error:
        return render(error)
    except web.HTTPMethodNotAllowed as exc:
        return render(MethodNotAllowedError(sorted(exc.allowed_methods)))


def basic(client_id: str, secret: str) -> str:
    pair = f"{quote_plus(client_id)}:{quote_plus(secret)}"
    return "Basic " + base64.b64encode(pair.encode()).decode()


def headers(authorization: str | None = None, **extra: str) -> dict[str, str]:
    result = {"Content-Type": FORM, "Accept-Encoding": "identity", **extra}
    if authorization is not None:
        result["Authorization"] = authorization
    return result


@pytest.fixture
def app(es256_tokens: TokenSettings, clients: tuple[ClientSettings, ...],
        tmp_path: Path) -> web.Application:
    tokens = TokenSettings(**{**{f: getattr(es256_tokens, f) for f in
                                 es256_tokens.__dataclass_fields__},
                              "failed_auth_per_minute": 3, "realm": "partner"})
    settings = Settings(
        source=tmp_path / "config.yaml",
        server=ServerSettings(tls=TLSSettings(cert_file=tmp_path / "c", key_file=tmp_path / "k")),
        tokens=tokens,
        clients=clients,
    )
    application = web.Application(middlewares=[render_errors])
    setup_oauth(application, settings)
    return application


@pytest.fixture
async def client(app: web.Application, aiohttp_client: AiohttpClient) -> Any:
    return await aiohttp_client(app, auto_decompress=False)


async def test_adobes_sample_request_gets_gzip_token(client: Any, app: web.Application) -> None:
    response = await client.post("/oauth2/token", data=GRANT, headers=SEED_HEADERS)
    assert response.status == 200
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
    body = json.loads(gzip.decompress(await response.read()))
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 600
    assert body["scope"] == "segments:write segments:read"  # no scope asked: all of them
    assert app[RUNTIME].current.verifier.verify(body["access_token"]).client_id == "aam"


@pytest.mark.parametrize("content_type", [
    f"{FORM} ; charset=UTF-8", f"{FORM};charset=utf-8", f"{FORM}",
    "Application/X-WWW-Form-Urlencoded", f'{FORM}; CHARSET="UTF-8"', f"{FORM};\tcharset=Utf-8 ",
])
async def test_content_type_variants_accepted(client: Any, content_type: str) -> None:
    response = await client.post("/oauth2/token", data=GRANT,
                                 headers=headers(basic("aam", SECRET), **{
                                     "Content-Type": content_type}))
    assert response.status == 200, await response.text()
    assert "Content-Encoding" not in response.headers  # identity was asked for


async def test_requested_scope_subset(client: Any) -> None:
    response = await client.post("/oauth2/token", data=GRANT + b"&scope=segments%3Aread",
                                 headers=headers(basic("aam", SECRET)))
    assert (await response.json())["scope"] == "segments:read"


async def test_client_secret_post(client: Any) -> None:
    body = f"grant_type=client_credentials&client_id=poster&client_secret={quote_plus(SECRET)}"
    response = await client.post("/oauth2/token", data=body.encode(), headers=headers())
    assert response.status == 200
    assert (await response.json())["scope"] == "read"


def expect(status: int, error: str, www_authenticate: str | None = None) -> Any:
    async def check(response: Any) -> None:
        assert response.status == status, await response.text()
        assert response.headers["Content-Type"].startswith("application/json")
        assert response.headers["Cache-Control"] == "no-store"
        body = await response.json()
        assert body["error"] == error and isinstance(body["error_description"], str)
        assert response.headers.get("WWW-Authenticate") == www_authenticate
    return check


INVALID_CLIENT = expect(401, "invalid_client", 'Basic realm="partner"')
INVALID_REQUEST = expect(400, "invalid_request")

ERROR_CASES: dict[str, tuple[bytes, dict[str, str], Any]] = {
    "grant_type missing": (b"scope=read", headers(basic("aam", SECRET)), INVALID_REQUEST),
    "parameter repeated": (GRANT + b"&" + GRANT, headers(basic("aam", SECRET)),
                           INVALID_REQUEST),
    "two auth methods": (GRANT + b"&client_id=poster&client_secret=x",
                         headers(basic("aam", SECRET)), INVALID_REQUEST),
    "malformed Basic": (GRANT, headers("Basic a b"), INVALID_REQUEST),
    "charset latin-1": (GRANT, headers(basic("aam", SECRET), **{
        "Content-Type": f"{FORM}; charset=ISO-8859-1"}), INVALID_REQUEST),
    "json body": (b'{"grant_type":"client_credentials"}', headers(basic("aam", SECRET), **{
        "Content-Type": "application/json"}), INVALID_REQUEST),
    "not utf-8": (GRANT + b"&scope=%ff", headers(basic("aam", SECRET)), INVALID_REQUEST),
    "client_id mismatch": (GRANT + b"&client_id=poster", headers(basic("aam", SECRET)),
                           INVALID_REQUEST),
    "unsupported grant": (b"grant_type=password", headers(basic("aam", SECRET)),
                          expect(400, "unsupported_grant_type")),
    "scope beyond client": (GRANT + b"&scope=segments%3Awrite+admin",
                            headers(basic("aam", SECRET)), expect(400, "invalid_scope")),
    "wrong secret": (GRANT, headers(basic("aam", "wrong")), INVALID_CLIENT),
    "unknown client": (GRANT, headers(basic("nobody", SECRET)), INVALID_CLIENT),
    "unknown opaque": (GRANT, headers("Basic " + SEED_CREDENTIAL[::-1]), INVALID_CLIENT),
    "no authentication": (GRANT, headers(), INVALID_CLIENT),
    "post not enabled": (GRANT + b"&client_id=aam&client_secret=" + quote_plus(SECRET).encode(),
                         headers(), INVALID_CLIENT),
    "body too large": (GRANT + b"&x=" + b"a" * 5000, headers(basic("aam", SECRET)),
                       expect(413, "payload_too_large")),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
async def test_rfc6749_errors(client: Any, case: str) -> None:
    body, request_headers, check = ERROR_CASES[case]
    await check(await client.post("/oauth2/token", data=body, headers=request_headers))


async def test_other_methods_405(client: Any) -> None:
    response = await client.get("/oauth2/token")
    assert response.status == 405 and response.headers["Allow"] == "POST"


async def test_wrong_secret_and_unknown_client_look_the_same(client: Any) -> None:
    answers = []
    for authorization in (basic("aam", "wrong"), basic("nobody", SECRET)):
        response = await client.post("/oauth2/token", data=GRANT, headers=headers(authorization))
        kept = {k: v for k, v in response.headers.items() if k not in ("Date", "Server")}
        answers.append((response.status, kept, await response.read()))
    assert answers[0] == answers[1]


async def test_failed_auth_limit_blocks_even_good_credentials(client: Any) -> None:
    for _ in range(3):
        response = await client.post("/oauth2/token", data=GRANT,
                                     headers=headers(basic("aam", "wrong")))
        assert response.status == 401
    response = await client.post("/oauth2/token", data=GRANT,
                                 headers=headers(basic("aam", SECRET)))
    assert response.status == 429
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert (await response.json())["error"] == "rate_limited"
    assert response.headers["Cache-Control"] == "no-store"


async def test_no_credential_or_token_in_logs(client: Any,
                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    ok = await client.post("/oauth2/token", data=GRANT, headers=headers(basic("aam", SECRET)))
    token = (await ok.json())["access_token"]
    await client.post("/oauth2/token", data=GRANT, headers=headers(basic("aam", "bad-pw-123")))
    await client.post("/oauth2/token", data=GRANT, headers=SEED_HEADERS)
    text = caplog.text + " ".join(str(r.__dict__) for r in caplog.records)
    for secret in (SECRET, "bad-pw-123", SEED_CREDENTIAL, token, basic("aam", SECRET)[6:]):
        assert secret not in text


async def test_discovery_documents(client: Any) -> None:
    jwks = await client.get("/.well-known/jwks.json")
    assert jwks.status == 200
    assert [k["kid"] for k in (await jwks.json(content_type=None))["keys"]] == ["es256-1"]
    meta = await (await client.get("/.well-known/oauth-authorization-server")).json()
    assert meta["issuer"] == "https://gateway.test"
    assert meta["token_endpoint"] == "https://gateway.test/oauth2/token"
    assert meta["jwks_uri"] == "https://gateway.test/.well-known/jwks.json"
    assert meta["grant_types_supported"] == ["client_credentials"]
    assert meta["token_endpoint_auth_methods_supported"] == ["client_secret_basic",
                                                             "client_secret_post"]
    assert meta["response_types_supported"] == ["none"]
    assert "segments:write" in meta["scopes_supported"]


def test_parse_form_rules() -> None:
    assert parse_form(b"grant_type=client_credentials&scope=a+b") == {
        "grant_type": "client_credentials", "scope": "a b"}
    assert parse_form(b"grant_type=client_credentials&scope=") == {
        "grant_type": "client_credentials"}  # RFC 6749 §3.1: empty means omitted
    for bad in (b"a=1&a=2", b"a=1&a=", b"novalue", b"=x", b"\xff=1"):
        with pytest.raises(InvalidRequestError):
            parse_form(bad)


@given(st.binary(max_size=300))
def test_parse_form_raises_only_gateway_errors(body: bytes) -> None:
    with contextlib.suppress(GatewayError):
        parse_form(body)


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=200))
def test_parse_form_text_raises_only_gateway_errors(text: str) -> None:
    with contextlib.suppress(GatewayError):
        parse_form(text.encode("utf-8", "surrogatepass"))
