"""``POST /oauth2/token``: the client-credentials grant (RFC 6749 §4.4, §5.1, §5.2;
docs/architecture.md).

The order of the checks (``authenticate_request``, shared with revocation and
introspection): an opaque credential in ``Authorization: Basic`` is found by its digest and
needs nothing else; any other credential is one *attempt* under the failed-authentication
limit of the caller's address (refused ``429`` before any credential is looked at, attempts
in flight counted), then the media type, then the Basic credential (a slow hash, off the
loop); only then is the body asked for (``100 Continue``) and read, bounded and strictly
parsed; ``client_secret_post`` credentials come from it. Then ``grant_type`` and ``scope``.
Every refusal is a ``gateway.errors`` exception that the app's single renderer answers. The
parsers are pure functions, so they can be property-tested.
"""

from __future__ import annotations

import json
import zlib
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote_plus

from aiohttp import hdrs, web

from gateway.config import ClientSettings
from gateway.errors import (
    InvalidClientError,
    InvalidRequestError,
    InvalidScopeError,
    PayloadTooLargeError,
    UnsupportedGrantTypeError,
)
from gateway.keys import CONTINUE, METRICS, RUNTIME, TRACE
from gateway.mediatype import accepts_gzip, charset_is_utf8, parse_media_type
from gateway.oauth.clients import parse_basic
from gateway.peer import client_address

if TYPE_CHECKING:
    from gateway.config import Settings
    from gateway.oauth.clients import ClientRegistry
    from gateway.oauth.tokens import TokenIssuer, TokenVerifier
    from gateway.state.mirror import FailedAuthGuard

__all__ = ["MAX_BODY_BYTES", "OAuthRuntime", "authenticate_request", "json_answer", "parse_basic",
           "parse_form", "read_form", "token_endpoint"]


class OAuthRuntime(Protocol):
    """What the OAuth endpoints use of the serving runtime (``serve/runtime.Runtime``),
    named here so that ``oauth`` does not depend on ``serve``."""

    settings: Settings
    registry: ClientRegistry
    guard: FailedAuthGuard
    issuer: TokenIssuer
    verifier: TokenVerifier


MAX_BODY_BYTES = 4096
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def parse_form(body: bytes) -> dict[str, str]:
    """Strict ``application/x-www-form-urlencoded`` parsing (RFC 6749 §3.1, Appendix B)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequestError("The request body is not UTF-8.") from None
    form: dict[str, str] = {}
    for pair in text.split("&"):
        if not pair:
            continue
        name, eq, raw = pair.partition("=")
        try:
            name = unquote_plus(name, errors="strict")
            value = unquote_plus(raw, errors="strict")
        except UnicodeDecodeError:
            raise InvalidRequestError("The request body is not UTF-8.") from None
        if not eq or not name:
            raise InvalidRequestError("The request body is not a valid form.")
        # RFC 6749 §3.2: "Request and response parameters MUST NOT be included more than once."
        if name in form:
            raise InvalidRequestError("A request parameter is repeated.")
        form[name] = value
    # RFC 6749 §3.1: "Parameters sent without a value MUST be treated as if they were
    # omitted from the request."
    return {name: value for name, value in form.items() if value}


def _check_media_type(value: str | None) -> None:
    if value is None:
        raise InvalidRequestError("Content-Type must be application/x-www-form-urlencoded.")
    parsed = parse_media_type(value)
    if parsed is None or parsed[0] != FORM_MEDIA_TYPE or not charset_is_utf8(parsed[1]):
        raise InvalidRequestError("Content-Type must be application/x-www-form-urlencoded.")


async def _read_body(request: web.Request) -> bytes:
    # SECURITY: refuse before reading what the header already says is too large, then
    # read no more than the bound for chunked bodies.
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise PayloadTooLargeError()
    # RFC 9110 §10.1.1: a client that sent Expect: 100-continue waits for this before the
    # body; every check that needs no body has passed by now.
    if hdrs.EXPECT in request.headers:  # the usual request has none: one C lookup
        send_continue = request.pop(CONTINUE, None)
        if send_continue is not None:
            await send_continue()
    body = bytearray()
    while chunk := await request.content.read(MAX_BODY_BYTES + 1 - len(body)):
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise PayloadTooLargeError()
    return bytes(body)


def _granted_scopes(client: ClientSettings, requested: str | None) -> tuple[str, ...]:
    if requested is None:
        return client.scopes
    scopes = tuple(dict.fromkeys(requested.split(" ")))
    # RFC 6749 §3.3: scope = scope-token *( SP scope-token ), so empty tokens are malformed.
    if "" in scopes or not set(scopes) <= set(client.scopes):
        raise InvalidScopeError()
    return scopes


async def read_form(request: web.Request) -> dict[str, str]:
    """The checked media type and strictly parsed form of an OAuth endpoint's request."""
    _check_media_type(request.headers.get(hdrs.CONTENT_TYPE))
    return parse_form(await _read_body(request))


async def authenticate_request(request: web.Request, runtime: OAuthRuntime
                               ) -> tuple[ClientSettings, dict[str, str]]:
    """RFC 6749 §2.3: the client and the form of a token, revocation (RFC 7009 §2.1) or
    introspection (RFC 7662 §2.1) request, authenticated by exactly one method."""
    registry = runtime.registry
    authorization = request.headers.getall(hdrs.AUTHORIZATION, [])
    if len(authorization) > 1:
        raise InvalidRequestError("The Authorization header is repeated.")
    if not authorization:
        # client_secret_post: the credentials are in the body, so the attempt spans its read.
        async with runtime.guard.attempt(caller_address(request, runtime)):
            form = await read_form(request)
            if "client_id" not in form or "client_secret" not in form:
                raise InvalidClientError(realm=registry.realm)
            try:
                client = await registry.authenticate_post(form["client_id"],
                                                          form["client_secret"])
            except InvalidClientError:
                # The same words whether the client exists or not: says how, not who.
                raise InvalidClientError(_body_refusal(registry.clients),
                                         realm=registry.realm) from None
    else:
        # SECURITY: an opaque credential is 256 random bits found by its digest: nobody
        # guesses it, so an address's failures do not stop it, and someone who shares
        # IRIS's address cannot lock IRIS out by failing on purpose (docs/security.md).
        found = registry.find_opaque(authorization[0])
        if found is None:
            async with runtime.guard.attempt(caller_address(request, runtime)):
                _check_media_type(request.headers.get(hdrs.CONTENT_TYPE))
                found = await registry.authenticate_basic(authorization[0])
        client = found
        form = await read_form(request)
        # RFC 6749 §2.3: "The client MUST NOT use more than one authentication method in
        # each request."
        if "client_secret" in form:
            raise InvalidRequestError("Use one client authentication method only.")
        if form.get("client_id", client.client_id) != client.client_id:
            raise InvalidRequestError("client_id does not match the credentials.")
    trace = request.get(TRACE)
    if trace is not None:  # absent only in unit tests that mount the endpoint alone
        trace.client_id = client.client_id
    return client, form


def _body_refusal(clients: tuple[ClientSettings, ...]) -> str:
    """What a failed ``client_secret_post`` is told: the same words whether the id is
    unknown, known without ``client_secret_post`` or known with a wrong secret, so they
    say nothing of the client; only whether any client may use the body, which the
    metadata's ``token_endpoint_auth_methods_supported`` publishes anyway."""
    if any(c.client_secret_post for c in clients):
        return ("Client authentication failed. Credentials in the request body "
                "(client_secret_post) are accepted only from clients configured for them; "
                "otherwise send them with HTTP Basic (client_secret_basic).")
    return ("Client authentication failed. Credentials in the request body "
            "(client_secret_post) are not enabled here; send them with HTTP Basic "
            "(client_secret_basic).")


def caller_address(request: web.Request, runtime: OAuthRuntime) -> str:
    """The address failed authentications are counted against: behind a trusted load
    balancer the caller's (X-Forwarded-For), not the balancer's, or one guesser would block
    every client of the fleet (docs/architecture.md, docs/deploy.md)."""
    return client_address(request, runtime.settings.server.trusted_proxies)


def json_answer(request: web.Request, document: dict[str, Any]) -> web.Response:
    """An OAuth JSON answer: ``no-store`` (RFC 6749 §5.1), gzip when the caller accepts it."""
    body = json.dumps(document, separators=(",", ":")).encode()
    headers = {**_NO_STORE, hdrs.VARY: hdrs.ACCEPT_ENCODING}
    if accepts_gzip(request.headers.get(hdrs.ACCEPT_ENCODING)):
        # gzip framing (16 +) with a 4 KiB window and the smallest state: a token answer is
        # under 1 KiB, and zlib's default 256 KiB of state cost 48 us to set up per answer
        # against 4 us (measured); the output is the same size.
        compressor = zlib.compressobj(6, zlib.DEFLATED, 16 + 12, 1)
        body = compressor.compress(body) + compressor.flush()
        headers[hdrs.CONTENT_ENCODING] = "gzip"
    return web.Response(body=body, headers=headers, content_type="application/json",
                        charset="utf-8")


async def token_endpoint(request: web.Request) -> web.Response:
    """RFC 6749 §4.4.2 Access Token Request → §5.1 Successful Response."""
    runtime = request.app[RUNTIME].current
    client, form = await authenticate_request(request, runtime)
    grant_type = form.get("grant_type")
    if grant_type is None:
        raise InvalidRequestError("grant_type is required.")
    if grant_type != "client_credentials":
        raise UnsupportedGrantTypeError()
    scopes = _granted_scopes(client, form.get("scope"))
    token, expires_in = runtime.issuer.mint(client, scopes)
    request.app[METRICS].count("gateway_tokens_issued_total", client.client_id)
    # RFC 6749 §5.1: the parameters "using the application/json media type"; "The
    # authorization server MUST include the HTTP Cache-Control response header field
    # with a value of no-store ... as well as the Pragma response header field with a
    # value of no-cache."
    return json_answer(request, {"access_token": token, "token_type": "Bearer",
                                 "expires_in": expires_in, "scope": " ".join(scopes)})
