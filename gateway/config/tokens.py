"""The ``tokens`` section: issuer, audience, lifetimes and the signing keys, each key checked
against the configured algorithm.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from gateway.config.hints import shell_path
from gateway.config.model import (
    ALGORITHMS,
    SigningKeySettings,
    TokenSettings,
)
from gateway.config.yamlpath import Reader, unique

_KEY_TYPES: dict[str, tuple[type, ...]] = {
    "ES256": (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey),
    "RS256": (rsa.RSAPrivateKey, rsa.RSAPublicKey),
    "EdDSA": (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey),
}


def read_tokens(r: Reader, value: Any, path: str) -> TokenSettings:
    m = r.mapping(value, path, ("issuer", "audience", "ttl_seconds", "leeway_seconds",
                                "failed_auth_per_minute", "algorithm", "keys", "realm"))
    # None when the value is refused: the keys are then read without an algorithm to
    # check them against (a key-type table keyed by a refused name would fail on it).
    algorithm = r.choice(m.get("algorithm"), f"{path}.algorithm", ALGORITHMS, default="ES256")
    keys: list[SigningKeySettings] = []
    for key_path, item in r.items(m.get("keys"), f"{path}.keys"):
        keys.append(_read_signing_key(r, item, key_path, algorithm))
    if not keys and not any(e.startswith(f"{path}.keys") for e in r.errors):
        r.fail(f"{path}.keys", "at least one key is required (`gateway keys generate "
                               "--alg ES256 --kid k1 --out certs/jwt-k1.pem`)")
    elif keys and algorithm is not None and not keys[0].can_sign:
        r.fail(f"{path}.keys[0]", "the first key signs, so it needs a private key or secret")
    unique(r, [(f"{path}.keys[{i}]", k.kid) for i, k in enumerate(keys)], "kid")
    return TokenSettings(
        issuer=r.url(m.get("issuer", "https://localhost:8443"), f"{path}.issuer",
                     schemes=("https",)),
        audience=r.string(m.get("audience"), f"{path}.audience", default="partner-api"),
        ttl_seconds=r.integer(m.get("ttl_seconds"), f"{path}.ttl_seconds", default=3600,
                              minimum=60, maximum=86400),
        leeway_seconds=r.integer(m.get("leeway_seconds"), f"{path}.leeway_seconds", default=30,
                                 minimum=0, maximum=300),
        failed_auth_per_minute=r.integer(m.get("failed_auth_per_minute"),
                                         f"{path}.failed_auth_per_minute", default=10,
                                         minimum=1, maximum=100000),
        algorithm=algorithm or "ES256",  # type: ignore[arg-type]
        keys=tuple(keys),
        realm=r.string(m.get("realm"), f"{path}.realm", default="gateway"),
    )

def _read_signing_key(r: Reader, value: Any, path: str,
                      algorithm: str | None) -> SigningKeySettings:
    m = r.mapping(value, path, ("kid", "private_key_file", "public_key_file", "secret"))
    kid = r.string(m.get("kid"), f"{path}.kid")
    given = [k for k in ("private_key_file", "public_key_file", "secret") if m.get(k) is not None]
    if len(given) != 1:
        r.fail(path, "give exactly one of private_key_file, public_key_file, secret")
    private = public = None
    secret = None
    if algorithm is None:
        pass  # the algorithm is refused; its keys cannot be judged against it
    elif algorithm == "HS256":
        if m.get("private_key_file") is not None or m.get("public_key_file") is not None:
            r.fail(path, "HS256 keys are a `secret`, not key files")
        if m.get("secret") is not None:
            secret = r.string(m.get("secret"), f"{path}.secret")
            if len(secret.encode()) < 32:
                r.fail(f"{path}.secret", "must be at least 32 bytes (RFC 7518 §3.2)")
    else:
        if m.get("secret") is not None:
            r.fail(f"{path}.secret", f"{algorithm} needs a key file, not a secret")
        if m.get("private_key_file") is not None:
            private = r.file(m["private_key_file"], f"{path}.private_key_file",
                             check=lambda p: check_signing_key(p, algorithm, private=True),
                             hint=_keys_hint(r, algorithm, kid, m["private_key_file"]))
        if m.get("public_key_file") is not None:
            public = r.file(m["public_key_file"], f"{path}.public_key_file",
                            check=lambda p: check_signing_key(p, algorithm, private=False))
    return SigningKeySettings(kid=kid, private_key_file=private, public_key_file=public,
                              secret=secret)

def _keys_hint(r: Reader, algorithm: str, kid: str, given: Any) -> str:
    """The whole command that writes the missing key where the file names it."""
    out = ""
    if isinstance(given, str) and given and "${" not in given:
        out = f" --out {shell_path(r.base_dir, given)}"
    return f" (run `gateway keys generate --alg {algorithm} --kid {kid or 'KID'}{out}`)"

def check_signing_key(path: Path, algorithm: str, *, private: bool) -> str | None:
    try:
        data = path.read_bytes()
        key: Any = (serialization.load_pem_private_key(data, password=None) if private
                    else serialization.load_pem_public_key(data))
    except (ValueError, TypeError, OSError):
        kind = "private" if private else "public"
        return f"not an unencrypted PEM {kind} key: {path}"
    if not isinstance(key, _KEY_TYPES[algorithm]):
        return f"is not a key for {algorithm}"
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) \
            and not isinstance(key.curve, ec.SECP256R1):
        return "ES256 needs a P-256 key"
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey) and key.key_size < 2048:
        return "RS256 needs an RSA key of at least 2048 bits"
    return None
