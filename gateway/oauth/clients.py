"""Client authentication at the token endpoint (RFC 6749 §2.3.1, RFC 7617 Basic).

Two forms of ``Authorization: Basic`` are accepted (docs/adobe.md):

* the RFC 6749 §2.3.1 form: base64 of ``client_id:client_secret``, each form-urlencoded;
  the client id names one client, whose (scrypt) ``secret_hash`` is checked;
* the opaque form Adobe's sample uses: the whole value after ``Basic`` is the credential.
  It names no client, so it is found by its sha256 digest (``credential_hash``).

The opaque table is consulted first: it is a dict lookup, and a 256-bit credential cannot
collide with anyone's RFC-form value. Successful slow checks are cached for a few minutes
under an HMAC of the credential, because IRIS fetches tokens again and again. The slow
checks themselves (scrypt) run in the bounded thread pool of ``hashing.py``, never on the
event loop.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote_plus

from cachetools import TTLCache

from gateway.config import ClientSettings
from gateway.config.hashes import PasswordHash
from gateway.errors import GatewayError, InvalidClientError, InvalidRequestError
from gateway.oauth.hashing import HashPool, hash_pool

__all__ = ["BasicCredentials", "ClientRegistry", "parse_basic"]

logger = logging.getLogger(__name__)

_MAX_CREDENTIAL = 4096
# RFC 7617 §2 / RFC 7235 §2.1 token68, widened to any visible ASCII: an opaque credential
# is whatever the partner handed to Adobe, but never holds spaces or control characters.
_CREDENTIAL = re.compile(r"[\x21-\x7e]+")
_CACHE_SIZE, _CACHE_TTL = 10_000, 300.0


@dataclass(frozen=True, slots=True)
class BasicCredentials:
    """A parsed Basic value: the raw credential and, if it decodes so, its RFC form pair."""

    credential: str
    pair: tuple[str, str] | None


def parse_basic(value: str) -> BasicCredentials:
    """Parse an ``Authorization`` value of scheme Basic; raises only GatewayError subclasses.

    A scheme other than Basic is a failed authentication (RFC 6749 §5.2 ``invalid_client``:
    "unsupported authentication method"); a Basic value that is not a single visible token
    is malformed (``invalid_request``).
    """
    scheme, _, rest = value.strip(" \t").partition(" ")
    # RFC 7235 §2.1: "the case-insensitive authentication scheme".
    if scheme.lower() != "basic":
        raise InvalidClientError()
    credential = rest.strip(" \t")
    if not credential or len(credential) > _MAX_CREDENTIAL or not _CREDENTIAL.fullmatch(
        credential
    ):
        raise InvalidRequestError("The Authorization header is malformed.")
    return BasicCredentials(credential, _decode_pair(credential))


def _decode_pair(credential: str) -> tuple[str, str] | None:
    """RFC 6749 §2.3.1: ``client_id`` and ``client_secret`` "encoded using the
    application/x-www-form-urlencoded encoding algorithm" and joined by ':' in base64."""
    try:
        raw = base64.b64decode(credential, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    client_id, colon, secret = raw.partition(":")
    if not colon:
        return None
    try:
        return (unquote_plus(client_id, errors="strict"), unquote_plus(secret, errors="strict"))
    except UnicodeDecodeError:
        return None


class ClientRegistry:
    """The configured clients, indexed for both Basic forms and ``client_secret_post``."""

    def __init__(self, clients: Iterable[ClientSettings], *, realm: str = "gateway",
                 pool: HashPool | None = None) -> None:
        self._clients = {c.client_id: c for c in clients}
        # Each client's scopes of this configuration, for the token verifier's one lookup.
        self.scopes = {c.client_id: frozenset(c.scopes) for c in self._clients.values()}
        self._realm = realm
        self._pool = pool if pool is not None else hash_pool()
        self._by_credential = {
            h.digest: c for c in self._clients.values() for h in c.credential_hashes
        }
        # SECURITY: an unknown client id still costs one slow hash of the usual parameters,
        # so the answer's timing does not tell a wrong id from a wrong secret.
        model = next((h for c in self._clients.values() for h in c.secret_hashes
                      if h.scheme == "scrypt"), PasswordHash("scrypt", b""))
        self._dummy = PasswordHash("scrypt", os.urandom(32), os.urandom(16),
                                   model.ln, model.r, model.p)
        self._cache_key = os.urandom(32)
        self._verified: TTLCache[bytes, ClientSettings] = TTLCache(
            _CACHE_SIZE, _CACHE_TTL, timer=time.monotonic
        )

    @classmethod
    def from_settings(
        cls, clients: Iterable[ClientSettings], *, realm: str = "gateway"
    ) -> ClientRegistry:
        return cls(clients, realm=realm)

    def get(self, client_id: str) -> ClientSettings | None:
        return self._clients.get(client_id)

    def __contains__(self, client_id: object) -> bool:
        return client_id in self._clients

    def __len__(self) -> int:
        return len(self._clients)

    @property
    def realm(self) -> str:
        return self._realm

    @property
    def clients(self) -> tuple[ClientSettings, ...]:
        return tuple(self._clients.values())

    def find_opaque(self, authorization_value: str) -> ClientSettings | None:
        """The client whose opaque credential this ``Authorization`` value carries, or None
        for anything else; one SHA-256, never raises. Such a credential is 256 random bits
        (docs/security.md): it cannot be guessed, so the token endpoint accepts it even from
        an address that failed too often."""
        try:
            parsed = parse_basic(authorization_value)
        except GatewayError:
            return None
        return self._by_credential.get(hashlib.sha256(parsed.credential.encode("utf-8")).digest())

    async def authenticate_basic(self, authorization_value: str) -> ClientSettings:
        """The client an ``Authorization: Basic`` value proves; raises InvalidClientError."""
        try:
            parsed = parse_basic(authorization_value)
        except InvalidClientError:
            logger.info("client authentication failed", extra={"reason_id": "not_basic"})
            raise self._failure() from None
        digest = hashlib.sha256(parsed.credential.encode("utf-8")).digest()
        opaque = self._by_credential.get(digest)
        if opaque is not None:
            return opaque
        if parsed.pair is None:
            logger.info("client authentication failed", extra={"reason_id": "unknown_credential"})
            raise self._failure()
        return await self._check_secret(parsed.pair[0], parsed.pair[1], "basic")

    async def authenticate_post(self, client_id: str, client_secret: str) -> ClientSettings:
        """RFC 6749 §2.3.1 ``client_secret_post``, for clients that enable it."""
        client = self._clients.get(client_id)
        if client is not None and not client.client_secret_post:
            await self._pool.verify((self._dummy,), client_secret)
            logger.info("client authentication failed",
                        extra={"reason_id": "post_not_enabled", "client_id": client_id})
            raise self._failure()
        return await self._check_secret(client_id, client_secret, "post")

    async def _check_secret(self, client_id: str, secret: str, method: str) -> ClientSettings:
        key = hmac.new(
            self._cache_key, f"{method}\0{client_id}\0{secret}".encode(), hashlib.sha256
        ).digest()
        cached = self._verified.get(key)
        if cached is not None:
            return cached
        client = self._clients.get(client_id)
        if client is None or not client.secret_hashes:
            await self._pool.verify((self._dummy,), secret)
            logger.info("client authentication failed", extra={"reason_id": "unknown_client"})
            raise self._failure()
        if not await self._pool.verify(client.secret_hashes, secret):
            logger.info("client authentication failed",
                        extra={"reason_id": "wrong_secret", "client_id": client_id})
            raise self._failure()
        self._verified[key] = client
        return client

    def _failure(self) -> InvalidClientError:
        # SECURITY: one generic answer whether the id, the secret or the form was wrong.
        return InvalidClientError(realm=self._realm)
