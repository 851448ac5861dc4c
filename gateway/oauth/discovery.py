"""Discovery documents: the JWK Set (RFC 7517 §5) and the authorization server metadata
(RFC 8414 §2, with the RFC 7009 and RFC 7662 endpoints), on the public listener
(docs/operations.md).

Both are serialized once, when the app is built: a request only copies prepared bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from gateway.config import ClientSettings, TokenSettings
from gateway.oauth.keys import KeySet

__all__ = [
    "JWKS_PATH",
    "METADATA_PATH",
    "REVOKE_PATH",
    "RFC7662_PATH",
    "TOKEN_PATH",
    "Discovery",
    "metadata",
]

JWKS_PATH = "/.well-known/jwks.json"
METADATA_PATH = "/.well-known/oauth-authorization-server"
TOKEN_PATH = "/oauth2/token"
REVOKE_PATH = "/oauth2/revoke"
RFC7662_PATH = "/oauth2/introspect"  # token introspection
# Public documents; a short cache lifetime still lets a key rotation propagate quickly.
_CACHE_CONTROL = "public, max-age=300"


def metadata(tokens: TokenSettings, clients: Iterable[ClientSettings]) -> dict[str, Any]:
    """RFC 8414 §2 metadata for a client-credentials-only authorization server."""
    clients = tuple(clients)
    base = tokens.issuer.rstrip("/")
    auth_methods = ["client_secret_basic"]
    if any(c.client_secret_post for c in clients):
        auth_methods.append("client_secret_post")
    return {
        # RFC 8414 §3.3: "The issuer value returned MUST be identical to the authorization
        # server's issuer identifier value".
        "issuer": tokens.issuer,
        "token_endpoint": base + TOKEN_PATH,
        "jwks_uri": base + JWKS_PATH,
        "grant_types_supported": ["client_credentials"],
        # RFC 8414 §2 makes this REQUIRED. RFC 7591 §2.1 pairs client_credentials with no
        # response type, but an empty list fails common validators (Authlib's
        # AuthorizationServerMetadata.validate()). "none" (OAuth 2.0 Multiple Response Type
        # Encoding Practices §4) is the registered type that issues nothing at an
        # authorization endpoint, and this document names none to try it at.
        "response_types_supported": ["none"],
        "token_endpoint_auth_methods_supported": auth_methods,
        # RFC 8414 §2 (from RFC 7009 and RFC 7662): the same client authentication.
        "revocation_endpoint": base + REVOKE_PATH,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint": base + RFC7662_PATH,
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "scopes_supported": sorted({s for c in clients for s in c.scopes}),
    }


def _encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


class Discovery:
    """The two documents as bytes, and their GET handlers."""

    __slots__ = ("jwks_body", "metadata_body")

    def __init__(self, keyset: KeySet, tokens: TokenSettings,
                 clients: Iterable[ClientSettings]) -> None:
        self.jwks_body = _encode(keyset.jwks())
        self.metadata_body = _encode(metadata(tokens, clients))

    async def jwks(self, request: web.Request) -> web.Response:
        # RFC 7517 §8.5: the JWK Set media type.
        return web.Response(body=self.jwks_body, content_type="application/jwk-set+json",
                            headers={"Cache-Control": _CACHE_CONTROL})

    async def metadata(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metadata_body, content_type="application/json",
                            headers={"Cache-Control": _CACHE_CONTROL})
