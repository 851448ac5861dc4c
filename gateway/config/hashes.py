"""Hash strings for client secrets and opaque credentials (docs/configuration.md ``secret_hash`` and
``credential_hash``): the YAML holds these, never a secret.

Two schemes, chosen by what is hashed:

* ``scrypt$ln=14,r=8,p=1$<salt>$<hash>`` (RFC 7914, salted and memory-hard) for a secret a
  human may have chosen. The RFC 6749 §2.3.1 form names its client id, so the one client's
  hash is checked: one slow hash per request whatever the number of clients.
* ``sha256$<hex>`` for an opaque credential (docs/adobe.md). It names no client, so the
  client is found by the credential's digest in a table. This is sound only for a
  machine-generated credential of high entropy (``gateway client add --opaque`` makes
  256 random bits; Adobe's sample is 77 random characters): nobody can search a 2^256
  space, so the salt and the slowness buy nothing there.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass

__all__ = ["HashFormatError", "PasswordHash", "hash_opaque", "hash_secret", "parse_hash"]

_SCRYPT_LN, _SCRYPT_R, _SCRYPT_P = 14, 8, 1
_SCRYPT_MAXMEM = 64 * 1024 * 1024


class HashFormatError(ValueError):
    """The string is not a hash this gateway can check."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


@dataclass(frozen=True, slots=True)
class PasswordHash:
    """A parsed hash string; ``verify`` runs in constant time for its scheme."""

    scheme: str  # "scrypt" or "sha256"
    digest: bytes
    salt: bytes = b""
    ln: int = _SCRYPT_LN
    r: int = _SCRYPT_R
    p: int = _SCRYPT_P

    def verify(self, secret: str) -> bool:
        if self.scheme == "sha256":
            computed = hashlib.sha256(secret.encode("utf-8")).digest()
        else:
            computed = hashlib.scrypt(
                secret.encode("utf-8"),
                salt=self.salt,
                n=1 << self.ln,
                r=self.r,
                p=self.p,
                maxmem=_SCRYPT_MAXMEM,
                dklen=len(self.digest),
            )
        # SECURITY: constant-time comparison of digests.
        return hmac.compare_digest(computed, self.digest)


def hash_secret(secret: str) -> str:
    """The salted scrypt hash string for a client secret."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(
        secret.encode("utf-8"),
        salt=salt,
        n=1 << _SCRYPT_LN,
        r=_SCRYPT_R,
        p=_SCRYPT_P,
        maxmem=_SCRYPT_MAXMEM,
        dklen=32,
    )
    return f"scrypt$ln={_SCRYPT_LN},r={_SCRYPT_R},p={_SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def hash_opaque(credential: str) -> str:
    """The lookup hash string for a high-entropy opaque credential."""
    return "sha256$" + hashlib.sha256(credential.encode("utf-8")).hexdigest()


def parse_hash(text: str) -> PasswordHash:
    """Parse a hash string; raises ``HashFormatError`` with a reason."""
    if not isinstance(text, str):
        raise HashFormatError("expected a hash string")
    scheme, _, rest = text.partition("$")
    if scheme == "sha256":
        try:
            digest = bytes.fromhex(rest)
        except ValueError:
            raise HashFormatError("sha256 hash must be 64 hex digits") from None
        if len(digest) != 32:
            raise HashFormatError("sha256 hash must be 64 hex digits")
        return PasswordHash("sha256", digest)
    if scheme == "scrypt":
        parts = rest.split("$")
        if len(parts) != 3:
            raise HashFormatError("scrypt hash must be scrypt$ln=N,r=N,p=N$salt$hash")
        try:
            params = dict(item.split("=", 1) for item in parts[0].split(","))
            ln, r, p = int(params["ln"]), int(params["r"]), int(params["p"])
            salt, digest = _unb64(parts[1]), _unb64(parts[2])
        except (ValueError, KeyError):
            raise HashFormatError("scrypt hash must be scrypt$ln=N,r=N,p=N$salt$hash") from None
        if not (10 <= ln <= 20 and 1 <= r <= 32 and 1 <= p <= 16):
            raise HashFormatError("scrypt parameters out of range (ln 10..20, r 1..32, p 1..16)")
        if len(salt) < 8 or len(digest) < 16:
            raise HashFormatError("scrypt salt or hash too short")
        return PasswordHash("scrypt", digest, salt, ln, r, p)
    raise HashFormatError("unknown hash scheme (expected scrypt$... or sha256$...)")
