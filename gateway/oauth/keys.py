"""Token signing and verification keys (RFC 7515 JWS, RFC 7517 JWK, RFC 7518 algorithms).

``KeySet.from_settings`` reads every configured key once, at start-up or reload: PEM files
become ``cryptography`` key objects and HS256 secrets become bytes, each already checked by
PyJWT's algorithm object. Requests then only look a ``kid`` up in a dict; nothing parses a
PEM per request. The first key signs; every key verifies, which is how keys rotate
(docs/configuration.md ``tokens.keys``). ``jwks()`` is the public half for
``/.well-known/jwks.json``.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import Algorithm

from gateway.config import SigningKeySettings, TokenSettings
from gateway.config.yamlpath import ConfigError

__all__ = ["KeySet", "generate_key"]

_RSA_BITS = 3072  # NIST SP 800-57: 3072-bit RSA matches the 128-bit strength of P-256.


class KeySet:
    """The parsed keys of ``tokens.keys`` for the one configured algorithm."""

    __slots__ = ("_jws", "_signing_key", "algorithm", "algorithm_object", "signing_kid",
                 "verification_keys")

    def __init__(
        self,
        algorithm: str,
        signing_kid: str,
        signing_key: Any,
        verification_keys: Mapping[str, Any],
    ) -> None:
        self.algorithm = algorithm
        # SECURITY: the registry holds only the configured algorithm, so no token header
        # can select another one (RFC 8725 §3.1); "none" is never registered.
        self._jws = jwt.PyJWS(algorithms=[algorithm])
        self.algorithm_object: Algorithm = self._jws.get_algorithm_by_name(algorithm)
        self.signing_kid = signing_kid
        self._signing_key = signing_key
        self.verification_keys: Mapping[str, Any] = MappingProxyType(dict(verification_keys))

    @classmethod
    def from_settings(cls, tokens: TokenSettings) -> KeySet:
        """Parse every key of ``tokens`` once; raises ``ConfigError`` naming the key."""
        algo = jwt.PyJWS(algorithms=[tokens.algorithm]).get_algorithm_by_name(tokens.algorithm)
        verification: dict[str, Any] = {}
        signing: tuple[str, Any] | None = None
        for index, key in enumerate(tokens.keys):
            try:
                private, public = _load(key, algo, tokens.algorithm)
            except (OSError, ValueError, TypeError, jwt.InvalidKeyError) as exc:
                raise ConfigError(
                    [f"tokens.keys[{index}]: cannot load key {key.kid!r}: "
                     f"{exc.__class__.__name__}"]
                ) from None
            verification[key.kid] = public
            if signing is None and private is not None:
                signing = (key.kid, private)
        if signing is None or signing[0] != tokens.keys[0].kid:
            raise ConfigError(["tokens.keys[0]: the first key signs, so it needs a private key"])
        return cls(tokens.algorithm, signing[0], signing[1], verification)

    def sign(self, claims: Mapping[str, Any], headers: Mapping[str, Any]) -> str:
        """The compact JWS of ``claims`` signed by the signing key, ``kid`` in the header."""
        payload = json.dumps(claims, separators=(",", ":")).encode()
        return self._jws.encode(
            payload,
            self._signing_key,
            algorithm=self.algorithm,
            headers={**headers, "kid": self.signing_kid},
        )

    def jwks(self) -> dict[str, Any]:
        """RFC 7517 §5 JWK Set of the public keys; empty for HS256, whose key is secret."""
        if self.algorithm == "HS256":
            return {"keys": []}
        keys = []
        for kid, public in self.verification_keys.items():
            jwk = dict(self.algorithm_object.to_jwk(public, as_dict=True))
            jwk.update({"kid": kid, "use": "sig", "alg": self.algorithm})
            keys.append(jwk)
        return {"keys": keys}


def _load(key: SigningKeySettings, algo: Algorithm, algorithm: str) -> tuple[Any, Any]:
    """(private or None, verification key) for one configured key."""
    if algorithm == "HS256":
        if key.secret is None:
            raise ValueError("HS256 key without secret")
        secret = algo.prepare_key(key.secret)
        return secret, secret
    if key.private_key_file is not None:
        private = algo.prepare_key(key.private_key_file.read_bytes())
        if not hasattr(private, "public_key"):
            raise ValueError("private_key_file holds a public key")
        return private, private.public_key()
    if key.public_key_file is not None:
        public = algo.prepare_key(key.public_key_file.read_bytes())
        if hasattr(public, "public_key"):
            # SECURITY: a verify-only entry must not become a second signing key by accident.
            raise ValueError("public_key_file holds a private key")
        return None, public
    raise ValueError("key without material")


def generate_key(alg: str) -> bytes:
    """A new signing key: PKCS#8 PEM for ES256/RS256/EdDSA, a url-safe secret for HS256."""
    if alg == "HS256":
        # RFC 7518 §3.2: a key of the same size as the hash output (256 bits) or larger.
        return secrets.token_urlsafe(48).encode()
    private: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    if alg == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
    elif alg == "RS256":
        private = rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS)
    elif alg == "EdDSA":
        private = ed25519.Ed25519PrivateKey.generate()
    else:
        raise ValueError(f"unsupported algorithm {alg!r} (ES256, RS256, EdDSA, HS256)")
    return private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
