"""Adobe's optional request signature (docs/configuration.md ``signature``; docs/adobe.md).

IRIS can sign each request: an HMAC (SHA-256, SHA-1 or MD5) of the request body, hex or
base64 in a header (``X-Signature`` by default), keyed with a secret shared with the partner.
The HMAC is over the body as sent; a missing or wrong signature is ``401``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from aiohttp import web

from gateway.config import SignatureSettings
from gateway.errors import InvalidTokenError

__all__ = ["SignatureError", "check_signature"]

_DIGESTS = {"sha256": hashlib.sha256, "sha1": hashlib.sha1, "md5": hashlib.md5}


class SignatureError(InvalidTokenError):
    """401: the request's HMAC signature is missing or wrong."""

    description = "The request signature is missing or wrong."


def _decode(value: str, size: int) -> bytes | None:
    value = value.strip()
    if len(value) == size * 2:
        try:
            return bytes.fromhex(value)
        except ValueError:
            return None
    try:
        decoded = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return decoded if len(decoded) == size else None


def check_signature(request: web.Request, raw_body: bytes, policy: SignatureSettings,
                    realm: str) -> None:
    values = request.headers.getall(policy.header, ())
    digest = hmac.new(policy.key.encode(), raw_body, _DIGESTS[policy.algorithm]).digest()
    given = _decode(values[0], len(digest)) if len(values) == 1 else None
    # SECURITY: constant-time comparison; a missing header compares against zeros.
    if not hmac.compare_digest(given or bytes(len(digest)), digest) or given is None:
        raise SignatureError(realm=realm)
