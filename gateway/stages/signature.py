"""Stage 6 of ``pipeline``: Adobe's request signature, checked as Adobe makes it
(docs/adobe.md "Request signing"; docs/configuration.md ``signature``).

IRIS can sign each request with an HMAC keyed by a secret the partner gave Adobe
(HmacSHA1 by default, HmacSHA256 or HmacMD5), sent base64-encoded as Adobe's Java writes it
(``Base64.encodeBase64String(result).trim()``) in a header the partner names
(``X-Signature`` by default). What is signed:

- for ``GET``, the request target exactly as sent: the path plus the query string
  (``/from-aam-s2s?sids=1,2,3``), neither decoded nor normalised;
- for every other method, the raw body as received, before any gzip inflation.

Any of the route's ``keys`` may have signed it (Adobe's key rotation has no announced
moment), and with several signature header values any one valid value passes. Hex is
accepted beside base64. Every comparison is constant-time. A missing or wrong signature is
``401``, counted as ``invalid_signature``; the check runs before the payload is validated.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import urlsplit

from aiohttp import web

from gateway.config import SignatureSettings
from gateway.errors import InvalidTokenError

__all__ = ["SignatureCheck", "SignatureError", "signed_bytes"]

_DIGESTS: Final[dict[str, Callable[[], Any]]] = {
    "sha1": hashlib.sha1, "sha256": hashlib.sha256, "md5": hashlib.md5}
# A bound on the work one request can ask for: HMACs are computed once per key, but each
# candidate value is compared with each of them.
_MAX_CANDIDATES = 8


class SignatureError(InvalidTokenError):
    """401: the request's HMAC signature is missing or wrong."""

    description = "The request signature is missing or wrong."


def signed_bytes(request: web.Request, raw_body: bytes) -> bytes:
    """What Adobe signs: the request target for GET, the raw body otherwise."""
    if request.method != "GET":
        return raw_body
    target = request.raw_path  # as sent: percent-escapes and the query untouched
    if not target.startswith("/"):  # absolute-form (RFC 9112 §3.2.2): its path and query
        parts = urlsplit(target)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    # The parser decoded the line as UTF-8 with surrogateescape: this gives back its bytes.
    return target.encode("utf-8", "surrogateescape")


def _decode(value: str, size: int) -> bytes | None:
    value = value.strip()
    if len(value) == size * 2:
        try:
            return bytes.fromhex(value)
        except ValueError:
            pass  # 40 base64 characters may also look like hex length: try base64
    try:
        # Padding is optional: some clients drop it, and the MAC decides anyway.
        decoded = base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return decoded if len(decoded) == size else None


class SignatureCheck:
    """One route's signature policy; ``check`` raises ``SignatureError``."""

    __slots__ = ("_digest", "_header", "_keys", "_realm", "_size")

    def __init__(self, policy: SignatureSettings, realm: str) -> None:
        self._header = policy.header
        self._digest = _DIGESTS[policy.algorithm]
        self._keys = tuple(key.encode() for key in policy.keys)
        self._size = self._digest().digest_size
        self._realm = realm

    def check(self, request: web.Request, raw_body: bytes) -> None:
        """Raise ``SignatureError`` (401) unless one header value is one key's HMAC of
        ``signed_bytes(request, raw_body)``."""
        candidates: list[bytes] = []
        for value in request.headers.getall(self._header, ()):
            # A proxy may fold repeated headers into one, comma-separated; base64 and hex
            # hold no comma, so a comma always separates two values.
            for part in value.split(",")[:_MAX_CANDIDATES]:
                decoded = _decode(part, self._size)
                if decoded is not None:
                    candidates.append(decoded)
        if not candidates or len(candidates) > _MAX_CANDIDATES:
            raise SignatureError(realm=self._realm)
        message = signed_bytes(request, raw_body)
        valid = False
        for key in self._keys:
            digest = hmac.new(key, message, self._digest).digest()
            for candidate in candidates:
                # SECURITY: constant-time comparison, and no early exit on a match.
                valid |= hmac.compare_digest(candidate, digest)
        if not valid:
            raise SignatureError(realm=self._realm)
