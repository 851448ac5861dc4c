"""``POST /oauth2/revoke`` (RFC 7009) and ``POST /oauth2/introspect`` (RFC 7662),
docs/architecture.md.

Both authenticate the client exactly as the token endpoint does (same limiter, media type,
form parser and client authentication: ``token_endpoint.authenticate_request``). A revoked
token's ``jti`` goes to the shared state until the token would have expired (``exp`` plus
the leeway the verifier allows), so every worker refuses it within a second
(``state/mirror.py``).

Who may see or revoke what: a client its own tokens; a client with the ``introspect`` scope
may introspect any token, one with the ``revoke`` scope revoke any (an operator's client).
Anything else, and any token that is not valid, introspects as ``{"active": false}``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from aiohttp import web

from gateway.errors import NO_STORE_HEADERS, InvalidGrantError, InvalidRequestError
from gateway.keys import METRICS, RUNTIME, SHARED_STATE
from gateway.oauth.token_endpoint import OAuthRuntime, authenticate_request, json_answer

if TYPE_CHECKING:
    from gateway.config import ClientSettings
    from gateway.oauth.tokens import VerifiedToken

__all__ = ["REVOKE_SCOPE", "RFC7662_SCOPE", "introspection_endpoint", "revocation_endpoint"]

log = logging.getLogger(__name__)

RFC7662_SCOPE = "introspect"
REVOKE_SCOPE = "revoke"
# RFC 7662 §2.2: the claims an active token's answer carries, when the token has them.
_CLAIMS = ("scope", "client_id", "exp", "iat", "nbf", "sub", "aud", "iss", "jti")


def _token_parameter(form: dict[str, str]) -> str:
    # RFC 7009 §2.1 / RFC 7662 §2.1: "token REQUIRED". token_type_hint is only a hint: the
    # server "MUST extend its search across all of its supported token types", of which
    # there is one, so it is not looked at.
    token = form.get("token")
    if token is None:
        raise InvalidRequestError("token is required.")
    return token


async def _client_and_token(request: web.Request) -> tuple[
        OAuthRuntime, ClientSettings, tuple[VerifiedToken, dict[str, Any]] | None]:
    """What both endpoints do first, as the token endpoint does: the client and the form
    (under the failed-authentication limit of the address); then the ``token`` looked up."""
    runtime = request.app[RUNTIME].current
    client, form = await authenticate_request(request, runtime)
    return runtime, client, runtime.verifier.introspect(_token_parameter(form))


async def revocation_endpoint(request: web.Request) -> web.Response:
    """RFC 7009 §2.1 Revocation Request → §2.2 Revocation Response."""
    runtime, client, found = await _client_and_token(request)
    if found is not None:
        verified, _ = found
        # RFC 7009 §2.1: the server "verifies whether the token was issued to the client
        # making the revocation request. If this validation fails, the request is refused";
        # RFC 6749 §5.2 invalid_grant: "... or was issued to another client".
        if verified.client_id != client.client_id and REVOKE_SCOPE not in client.scopes:
            raise InvalidGrantError("The token was not issued to this client.")
        leeway = runtime.settings.tokens.leeway_seconds
        await request.app[SHARED_STATE].revoke(verified.jti, verified.exp + leeway)
        request.app[METRICS].count("gateway_tokens_revoked_total")
        log.info("token revoked", extra={"reason_id": "token_revoked",
                                         "client_id": verified.client_id,
                                         "by_client_id": client.client_id})
    # RFC 7009 §2.2: "The authorization server responds with HTTP status code 200 if the
    # token has been revoked successfully or if the client submitted an invalid token."
    return web.Response(status=200, headers=NO_STORE_HEADERS)


async def introspection_endpoint(request: web.Request) -> web.Response:
    """RFC 7662 §2.1 Introspection Request → §2.2 Introspection Response."""
    _, client, found = await _client_and_token(request)
    answer: dict[str, Any] = {"active": False}
    # SECURITY: another client's token looks inactive; RFC 7662 §4 lets the server "respond
    # with an inactive token" rather than tell the caller anything about it.
    if found is not None and (found[0].client_id == client.client_id
                              or RFC7662_SCOPE in client.scopes):
        claims = found[1]
        answer = {"active": True, "token_type": "Bearer",
                  **{name: claims[name] for name in _CLAIMS if name in claims}}
    return json_answer(request, answer)
