"""KeySet: keys parsed once, signing with the first, verifying with all, the JWK Set
checked by an independent JOSE library (joserfc), and key generation."""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from joserfc import jwt as jose_jwt
from joserfc.jwk import KeySet as JoseKeySet

from gateway.config import SigningKeySettings, TokenSettings
from gateway.config.yamlpath import ConfigError
from gateway.oauth.keys import KeySet, generate_key

from .conftest import settings_for, token_settings

CLAIMS = {"iss": "https://gateway.test", "sub": "aam", "exp": 4_000_000_000}


def test_signs_with_first_key_and_kid(any_tokens: TokenSettings) -> None:
    keyset = KeySet.from_settings(any_tokens)
    token = keyset.sign(CLAIMS, {"typ": "at+jwt"})
    header = jwt.get_unverified_header(token)
    assert header == {"alg": any_tokens.algorithm, "kid": any_tokens.keys[0].kid,
                      "typ": "at+jwt"}
    key = keyset.verification_keys[keyset.signing_kid]
    assert jwt.decode(token, key, algorithms=[any_tokens.algorithm]) == CLAIMS


@pytest.mark.parametrize("algorithm", ["ES256", "RS256", "EdDSA"])
def test_jwks_verifies_tokens_in_joserfc(algorithm: str, signing_keys: dict[str, Path]) -> None:
    keyset = KeySet.from_settings(settings_for(algorithm, signing_keys))
    document = keyset.jwks()
    (entry,) = document["keys"]
    assert entry["kid"] == keyset.signing_kid
    assert entry["use"] == "sig" and entry["alg"] == algorithm
    # SECURITY: the published set holds no private parameter.
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(entry)
    token = keyset.sign(CLAIMS, {"typ": "at+jwt"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # joserfc marks EdDSA as superseded by Ed25519
        decoded = jose_jwt.decode(token, JoseKeySet.import_key_set(document),
                                  algorithms=[algorithm])
    assert decoded.claims == CLAIMS
    assert decoded.header["kid"] == keyset.signing_kid


def test_hs256_publishes_no_keys(signing_keys: dict[str, Path]) -> None:
    assert KeySet.from_settings(settings_for("HS256", signing_keys)).jwks() == {"keys": []}


def test_rotation_old_key_still_verifies(signing_keys: dict[str, Path]) -> None:
    old = token_settings("ES256", [SigningKeySettings(
        kid="old", private_key_file=signing_keys["ES256-2"])])
    new = token_settings("ES256", [
        SigningKeySettings(kid="new", private_key_file=signing_keys["ES256"]),
        SigningKeySettings(kid="old", private_key_file=signing_keys["ES256-2"]),
    ])
    old_token = KeySet.from_settings(old).sign(CLAIMS, {"typ": "at+jwt"})
    keyset = KeySet.from_settings(new)
    assert keyset.signing_kid == "new"
    assert set(keyset.verification_keys) == {"new", "old"}
    assert len(keyset.jwks()["keys"]) == 2
    assert jwt.decode(old_token, keyset.verification_keys["old"], algorithms=["ES256"]) == CLAIMS


def test_verify_only_public_key(signing_keys: dict[str, Path], tmp_path: Path) -> None:
    private = serialization.load_pem_private_key(signing_keys["ES256-2"].read_bytes(), None)
    public_file = tmp_path / "old.pub.pem"
    public_file.write_bytes(private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    tokens = token_settings("ES256", [
        SigningKeySettings(kid="new", private_key_file=signing_keys["ES256"]),
        SigningKeySettings(kid="old", public_key_file=public_file),
    ])
    keyset = KeySet.from_settings(tokens)
    assert isinstance(keyset.verification_keys["old"], ec.EllipticCurvePublicKey)
    # A verify-only key never signs, even if it were listed first.
    with pytest.raises(ConfigError, match=r"tokens\.keys\[0\]"):
        KeySet.from_settings(replace(tokens, keys=tokens.keys[::-1]))


def test_unreadable_or_wrong_key_is_a_config_error(signing_keys: dict[str, Path],
                                                   tmp_path: Path) -> None:
    missing = token_settings("ES256", [SigningKeySettings(
        kid="k", private_key_file=tmp_path / "missing.pem")])
    with pytest.raises(ConfigError, match=r"tokens\.keys\[0\]: cannot load key 'k'"):
        KeySet.from_settings(missing)
    wrong = token_settings("ES256", [SigningKeySettings(
        kid="k", private_key_file=signing_keys["RS256"])])
    with pytest.raises(ConfigError):
        KeySet.from_settings(wrong)


@pytest.mark.parametrize(("algorithm", "kind"), [
    ("ES256", ec.EllipticCurvePrivateKey),
    ("RS256", rsa.RSAPrivateKey),
    ("EdDSA", ed25519.Ed25519PrivateKey),
])
def test_generate_key_pem(algorithm: str, kind: type, tmp_path: Path) -> None:
    pem = generate_key(algorithm)
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8
    key = serialization.load_pem_private_key(pem, None)
    assert isinstance(key, kind)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        assert isinstance(key.curve, ec.SECP256R1)
    if isinstance(key, rsa.RSAPrivateKey):
        assert key.key_size == 3072
    path = tmp_path / "k.pem"
    path.write_bytes(pem)
    tokens = token_settings(algorithm, [SigningKeySettings(kid="g", private_key_file=path)])
    assert KeySet.from_settings(tokens).sign(CLAIMS, {})


def test_generate_hs256_secret() -> None:
    first, second = generate_key("HS256"), generate_key("HS256")
    assert len(first) >= 32 and first != second
    assert first.decode().replace("-", "").replace("_", "").isalnum()
    with pytest.raises(ValueError, match="unsupported"):
        generate_key("none")
