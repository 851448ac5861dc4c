"""Stage 3 of ``pipeline``: the bearer token (RFC 6750 §2.1, §3.1; RFC 9068 §4).

The token is taken from exactly one place, the ``Authorization`` header: two headers, or a
token also offered as an ``access_token`` query parameter, is ``invalid_request`` (RFC 6750
§2: "Clients MUST NOT use more than one method to transmit the token in each request").
Verification itself (signature, claims, cache) is ``oauth.tokens.TokenVerifier``'s.
"""

from __future__ import annotations

import re

from aiohttp import hdrs, web

from gateway.errors import InsufficientScopeError, InvalidRequestError, MissingTokenError
from gateway.oauth.tokens import TokenVerifier, VerifiedToken

__all__ = ["check_bearer", "extract_bearer"]

# RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


def _malformed(description: str, realm: str) -> InvalidRequestError:
    return InvalidRequestError(
        description,
        headers={"WWW-Authenticate": f'Bearer realm="{realm}", error="invalid_request"'},
    )


def extract_bearer(request: web.Request, realm: str) -> str:
    """The one bearer token of the request; ``MissingTokenError`` (401, no error code) when
    there is none, ``InvalidRequestError`` (400) when it is malformed or sent twice."""
    values = request.headers.getall(hdrs.AUTHORIZATION, ())
    if not values:
        raise MissingTokenError(realm=realm)
    if len(values) > 1:
        raise _malformed("Send the Authorization header once.", realm)
    scheme, _, credentials = values[0].strip().partition(" ")
    if scheme.lower() != "bearer":
        # Another scheme (Basic) carries no bearer token: the "no authentication" case.
        raise MissingTokenError(realm=realm)
    token = credentials.strip(" ")
    if not _B64TOKEN.fullmatch(token):
        raise _malformed("The Authorization header is not a Bearer token.", realm)
    if request.query_string and "access_token" in request.query:
        raise _malformed("Send the access token in one place only.", realm)
    return token


def check_bearer(request: web.Request, verifier: TokenVerifier, scope: str | None,
                 realm: str) -> VerifiedToken:
    """The verified token of the request: extracted (``extract_bearer``), verified (401
    ``invalid_token``), then the route's scope checked (403 ``insufficient_scope``)."""
    verified = verifier.verify(extract_bearer(request, realm))
    if scope is not None and scope not in verified.scopes:
        raise InsufficientScopeError(realm=realm, scope=scope)
    return verified
