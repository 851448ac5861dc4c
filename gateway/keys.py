"""Every ``web.AppKey`` and ``web.RequestKey`` of the gateway, in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from gateway.oauth.clients import ClientRegistry
    from gateway.oauth.keys import KeySet
    from gateway.oauth.tokens import TokenIssuer, TokenVerifier, VerifiedToken
    from gateway.ratelimit import FailedAuthLimiter
    from gateway.settings import RouteSettings, Settings
    from gateway.upstream import Forwarder

__all__ = [
    "CLIENT_REGISTRY",
    "FAILED_AUTH_LIMITER",
    "FORWARDER",
    "KEY_SET",
    "REQUEST_ID",
    "ROUTE",
    "SETTINGS",
    "TOKEN_ISSUER",
    "TOKEN_VERIFIER",
    "VERIFIED_TOKEN",
]

SETTINGS: web.AppKey[Settings] = web.AppKey("SETTINGS")
KEY_SET: web.AppKey[KeySet] = web.AppKey("KEY_SET")
CLIENT_REGISTRY: web.AppKey[ClientRegistry] = web.AppKey("CLIENT_REGISTRY")
TOKEN_ISSUER: web.AppKey[TokenIssuer] = web.AppKey("TOKEN_ISSUER")
TOKEN_VERIFIER: web.AppKey[TokenVerifier] = web.AppKey("TOKEN_VERIFIER")
FAILED_AUTH_LIMITER: web.AppKey[FailedAuthLimiter] = web.AppKey("FAILED_AUTH_LIMITER")
FORWARDER: web.AppKey[Forwarder] = web.AppKey("FORWARDER")

REQUEST_ID: web.RequestKey[str] = web.RequestKey("REQUEST_ID")
ROUTE: web.RequestKey[RouteSettings] = web.RequestKey("ROUTE")
VERIFIED_TOKEN: web.RequestKey[VerifiedToken] = web.RequestKey("VERIFIED_TOKEN")
