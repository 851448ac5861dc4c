"""JWT access tokens: minting and verifying them (RFC 9068, RFC 7519, RFC 8725).

``TokenIssuer.mint`` makes the RFC 9068 token the token endpoint returns. ``TokenVerifier``
checks a bearer token on every protected request: a size bound and the compact form, the
JOSE header read here against the configuration (never the other way round), the signature
by PyJWT's algorithm object for the configured algorithm only, the registered claims
(RFC 7519 §4.1, RFC 9068 §4) with leeway, then the client still being configured (its
token's scopes cut to those it has now). PyJWT's
``decode`` is not used on this path: its per-character base64 check cost more than the
signature itself (measured ~100 µs per token), and a flood of bad tokens must stay cheap.
Verified tokens are cached until their ``exp``; a reload builds a new verifier (an empty
cache), so a removed key or client is refused at once (docs/architecture.md). Revoked token ids
(RFC 7009) are checked on every call, cache hits included.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import secrets
import time
from collections.abc import Container
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from cachetools import LRUCache

from gateway.config import ClientSettings, TokenSettings
from gateway.errors import InvalidTokenError
from gateway.oauth.clients import ClientRegistry
from gateway.oauth.keys import KeySet

__all__ = ["MAX_TOKEN_BYTES", "TokenIssuer", "TokenVerifier", "VerifiedToken"]

logger = logging.getLogger(__name__)

MAX_TOKEN_BYTES = 4096
# Verified tokens kept (LRU; an expired one is dropped when next looked up). IRIS holds one
# token an hour per client; 2,048 tokens of ~700 characters are 2.4 MiB. 10,000 were 11.5
# MiB, filled with long-expired tokens in a soak (README, memory). A TTL-aware cache cost
# ~0.9 us more per lookup, every push, for no memory the bound does not already cap.
CACHE_SIZE = 2048
# RFC 9068 §2.1 / §4: "at+jwt", optionally with the "application/" prefix (RFC 7515 §4.1.9).
_ACCEPTED_TYP = frozenset({"at+jwt", "application/at+jwt"})
# SECURITY: extensions this verifier does not implement; RFC 7515 §4.1.11 says a recipient
# that does not understand a "crit" extension must reject, and b64 (RFC 7797) changes what is
# signed. jku/x5u/jwk/x5c are simply ignored: keys only ever come from the configuration.
_REFUSED_HEADERS = ("crit", "b64")
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """What a protected route may trust about the caller once its token verified."""

    client_id: str
    scopes: frozenset[str]
    exp: int
    jti: str
    # The X-Gateway-Scope value, built once per verification: a cached token is reused by
    # every push until it expires, so no push pays for sorting and joining it again.
    scope: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "scope", " ".join(sorted(self.scopes)))


class TokenIssuer:
    """Mints RFC 9068 access tokens for authenticated clients."""

    def __init__(self, tokens: TokenSettings, keyset: KeySet) -> None:
        self._issuer = tokens.issuer
        self._audience = tokens.audience
        self._ttl = tokens.ttl_seconds
        self._keyset = keyset

    @property
    def ttl_seconds(self) -> int:
        """``tokens.ttl_seconds``: the lifetime of a client without one of its own."""
        return self._ttl

    def mint(self, client: ClientSettings, scopes: tuple[str, ...]) -> tuple[str, int]:
        """(access token, expires_in seconds) for ``client`` with the granted ``scopes``."""
        now = int(time.time())
        # The client's own lifetime when it has one (AEP: 24 h beside IRIS's hour).
        ttl = self._ttl if client.ttl_seconds is None else client.ttl_seconds
        claims: dict[str, Any] = {
            # RFC 9068 §2.2: "iss REQUIRED - as defined in Section 4.1.1 of [RFC7519]."
            "iss": self._issuer,
            # RFC 9068 §2.2: "exp REQUIRED - as defined in Section 4.1.4 of [RFC7519]."
            "exp": now + ttl,
            # RFC 9068 §2.2: "aud REQUIRED - as defined in Section 4.1.3 of [RFC7519]."
            "aud": self._audience,
            # RFC 9068 §2.2: "In cases of access tokens obtained through grants where no
            # resource owner is involved, such as the client credentials grant, the value of
            # sub SHOULD correspond to an identifier the authorization server uses to
            # indicate the client application."
            "sub": client.client_id,
            # RFC 9068 §2.2: "client_id REQUIRED - as defined in Section 4.3 of [RFC8693]."
            "client_id": client.client_id,
            # RFC 9068 §2.2: "iat REQUIRED - as defined in Section 4.1.6 of [RFC7519]. This
            # claim identifies the time at which the JWT access token was issued."
            "iat": now,
            # RFC 9068 §2.2: "jti REQUIRED - as defined in Section 4.1.7 of [RFC7519]."
            # SECURITY: 192 random bits, so revocation by jti cannot hit another token.
            "jti": secrets.token_urlsafe(24),
        }
        # RFC 9068 §2.2.3: "If an authorization request includes a scope parameter, the
        # corresponding issued JWT access token SHOULD include a scope claim as defined
        # in Section 4.2 of [RFC8693]."
        claims["scope"] = " ".join(scopes)
        # RFC 9068 §2.1: "JWT access tokens MUST include this media type in the typ header
        # parameter to explicitly declare that the JWT represents an access token
        # complying with this profile. Per the definition of typ in Section 4.1.9 of
        # [RFC7515], it is RECOMMENDED that the application/ prefix be omitted."
        token = self._keyset.sign(claims, {"typ": "at+jwt"})
        return token, ttl


class TokenVerifier:
    """Verifies bearer tokens against the configured keys and clients, with a cache."""

    def __init__(self, tokens: TokenSettings, keyset: KeySet, registry: ClientRegistry,
                 revoked: Container[str] = frozenset()) -> None:
        self._issuer = tokens.issuer
        self._audience = tokens.audience
        self._leeway = tokens.leeway_seconds
        self._realm = tokens.realm
        self._keyset = keyset
        self._registry = registry
        self._cache: LRUCache[str, VerifiedToken] = LRUCache(CACHE_SIZE)
        # The shared state's in-memory set of revoked jti (docs/architecture.md), mutated in place
        # by
        # its refresh task; consulted on cache hits too, so a revocation is never cached away.
        self._revoked = revoked
        self.hits = 0
        self.misses = 0

    def replace(self, *, keyset: KeySet | None = None,
                registry: ClientRegistry | None = None) -> None:
        """Swap keys and/or clients (a reload) and forget every cached verdict."""
        if keyset is not None:
            self._keyset = keyset
        if registry is not None:
            self._registry = registry
        self.clear()

    def clear(self) -> None:
        self._cache.clear()

    def verify(self, token: str) -> VerifiedToken:
        """The verified token's facts; raises InvalidTokenError with a generic text."""
        cached = self._cache.get(token)
        if cached is not None:
            # SECURITY: a cached verdict never outlives the token's exp.
            if time.time() < cached.exp:
                self.hits += 1
                if cached.jti in self._revoked:
                    raise self._invalid("revoked")
                return cached
            self._cache.pop(token, None)
        self.misses += 1
        verified, _ = self._verify(token)
        if verified.jti in self._revoked:
            raise self._invalid("revoked")
        if time.time() < verified.exp:
            self._cache[token] = verified
        return verified

    def introspect(self, token: str) -> tuple[VerifiedToken, dict[str, Any]] | None:
        """RFC 7662 §2.2: the facts and claims of an active token, None for any other
        (malformed, bad signature, expired, revoked, removed client); never cached."""
        try:
            verified, claims = self._verify(token)
        except InvalidTokenError:
            return None
        return None if verified.jti in self._revoked else (verified, claims)

    def counters(self) -> dict[str, int]:
        return {"gateway_token_cache_hits_total": self.hits,
                "gateway_token_cache_misses_total": self.misses}

    def _verify(self, token: str) -> tuple[VerifiedToken, dict[str, Any]]:
        # SECURITY: bound the work an unauthenticated caller can cause before any crypto;
        # RFC 7515 §7.1 compact form, unpadded base64url (RFC 7515 §2), nothing else.
        if len(token) > MAX_TOKEN_BYTES or not _COMPACT_JWS.fullmatch(token):
            raise self._invalid("malformed")
        signing_input, _, signature_segment = token.rpartition(".")
        header_segment, _, payload_segment = signing_input.partition(".")
        header = _json_object(header_segment)
        if header is None:
            raise self._invalid("malformed_header")
        key = self._key_for(header)
        signature = _b64decode(signature_segment)
        keyset = self._keyset
        # SECURITY: PyJWT's algorithm object for the configured algorithm (from a PyJWS
        # registry holding that algorithm only) checks the signature with the kid's key.
        try:
            valid = signature is not None and keyset.algorithm_object.verify(
                signing_input.encode("ascii"), key, signature)
        except (ValueError, TypeError):
            valid = False
        if not valid:
            raise self._invalid("bad_signature")
        claims = _json_object(payload_segment)
        if claims is None:
            raise self._invalid("malformed_claims")
        return self._check_claims(claims), claims

    def _key_for(self, header: dict[str, Any]) -> Any:
        """The verification key the header's kid names, after checking the header."""
        # SECURITY: exact match with the configured algorithm; "none" can never match.
        if header.get("alg") != self._keyset.algorithm:
            raise self._invalid("wrong_alg")
        typ = header.get("typ")
        # RFC 9068 §4: "Resource servers receiving a JWT access token MUST validate that
        # the typ header is at+jwt or application/at+jwt" (media types: case-insensitive).
        if not isinstance(typ, str) or typ.lower() not in _ACCEPTED_TYP:
            raise self._invalid("wrong_typ")
        if any(name in header for name in _REFUSED_HEADERS):
            raise self._invalid("refused_header")
        kid = header.get("kid")
        key = self._keyset.verification_keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise self._invalid("unknown_kid")
        return key

    def _check_claims(self, claims: dict[str, Any]) -> VerifiedToken:
        """RFC 7519 §4.1 registered claims and RFC 9068 §4 validation, with leeway."""
        now, leeway = time.time(), self._leeway
        exp, iat, nbf = claims.get("exp"), claims.get("iat"), claims.get("nbf", 0)
        if not (_is_int(exp) and _is_int(iat) and _is_int(nbf)):
            raise self._invalid("bad_claims")
        # RFC 7519 §4.1.4: "the current date/time MUST be before the expiration date/time".
        if now >= exp + leeway:
            raise self._invalid("expired")
        # RFC 7519 §4.1.5 nbf; iat in the future is refused as well (never issued so).
        if nbf > now + leeway or iat > now + leeway:
            raise self._invalid("not_yet_valid")
        # RFC 9068 §4: "The issuer identifier for the authorization server ... MUST exactly
        # match the value of the iss claim"; "The resource server MUST validate that the
        # aud claim contains a resource indicator value corresponding to an identifier the
        # resource server expects for itself." Our tokens carry one audience string.
        if claims.get("iss") != self._issuer or claims.get("aud") != self._audience:
            raise self._invalid("wrong_iss_or_aud")
        client_id, sub = claims.get("client_id"), claims.get("sub")
        jti, scope = claims.get("jti"), claims.get("scope", "")
        if not (isinstance(client_id, str) and sub == client_id and isinstance(jti, str)
                and jti and isinstance(scope, str)):
            raise self._invalid("bad_claims")
        # SECURITY: a removed client loses its tokens at once; a client whose scopes a
        # reload narrowed keeps only those it still has (one lookup; cache hits skip it).
        held = self._registry.scopes.get(client_id)
        if held is None:
            raise self._invalid("unknown_client")
        scopes = frozenset(scope.split())
        return VerifiedToken(client_id, scopes if scopes <= held else scopes & held, exp, jti)

    def _invalid(self, reason_id: str) -> InvalidTokenError:
        # SECURITY: a stable reason for the log; the client only ever sees the generic text.
        logger.info("access token rejected", extra={"reason_id": reason_id})
        return InvalidTokenError(realm=self._realm)


def _is_int(value: object) -> TypeGuard[int]:
    return type(value) is int


def _b64decode(segment: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        return None


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # SECURITY: RFC 7515 §4 and RFC 7519 §4 let a parser reject duplicate names or keep the
    # last; rejecting leaves no room for two readers to see different alg, aud or client_id.
    value = dict(pairs)
    if len(value) != len(pairs):
        raise ValueError("duplicate member name")
    return value


def _json_object(segment: str) -> dict[str, Any] | None:
    raw = _b64decode(segment)
    if raw is None:
        return None
    try:
        # SECURITY: strict UTF-8 (RFC 7515 §2, RFC 8259 §8.1); json.loads on bytes would
        # also take UTF-16/32, a byte-order mark and encoded surrogates.
        value = json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_members)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None
