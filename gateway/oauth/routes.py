"""Wiring of the OAuth part into the app: the token endpoint (RFC 6749 §4.4) and the
discovery documents (RFC 8414, RFC 7517), plus the shared objects other stages use.

``setup_oauth`` parses keys and clients once and stores the results under the AppKeys of
``gateway.keys``: the authn stage finds ``TOKEN_VERIFIER`` there.
"""

from __future__ import annotations

from aiohttp import web

from gateway.keys import (
    CLIENT_REGISTRY,
    FAILED_AUTH_LIMITER,
    KEY_SET,
    TOKEN_ISSUER,
    TOKEN_VERIFIER,
)
from gateway.oauth.clients import ClientRegistry
from gateway.oauth.discovery import JWKS_PATH, METADATA_PATH, TOKEN_PATH, Discovery
from gateway.oauth.keys import KeySet
from gateway.oauth.token_endpoint import token_endpoint
from gateway.oauth.tokens import TokenIssuer, TokenVerifier
from gateway.ratelimit import FailedAuthLimiter
from gateway.settings import Settings

__all__ = ["setup_oauth"]


def setup_oauth(app: web.Application, settings: Settings) -> None:
    """Build the OAuth objects from ``settings`` and register the OAuth routes on ``app``.

    Raises ``ConfigError`` if a key file cannot be loaded.
    """
    tokens = settings.tokens
    keyset = KeySet.from_settings(tokens)
    registry = ClientRegistry.from_settings(settings.clients, realm=tokens.realm)
    app[KEY_SET] = keyset
    app[CLIENT_REGISTRY] = registry
    app[TOKEN_ISSUER] = TokenIssuer(tokens, keyset)
    app[TOKEN_VERIFIER] = TokenVerifier(tokens, keyset, registry)
    app[FAILED_AUTH_LIMITER] = FailedAuthLimiter(tokens.failed_auth_per_minute)
    discovery = Discovery(keyset, tokens, settings.clients)
    # Only POST is registered: aiohttp's router answers other methods 405 with Allow: POST.
    app.router.add_post(TOKEN_PATH, token_endpoint)
    app.router.add_get(JWKS_PATH, discovery.jwks)
    app.router.add_get(METADATA_PATH, discovery.metadata)
