"""TokenIssuer and TokenVerifier: RFC 9068 tokens, every refusal of docs/architecture.md (generic
``invalid_token`` only), and the verified-token cache bounded by ``exp``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.config import ClientSettings, SigningKeySettings, TokenSettings
from gateway.errors import InvalidTokenError
from gateway.oauth import tokens as tokens_module
from gateway.oauth.clients import ClientRegistry
from gateway.oauth.keys import KeySet
from gateway.oauth.tokens import TokenIssuer, TokenVerifier, VerifiedToken

from .conftest import AUDIENCE, ISSUER, token_settings


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def forge(header: dict[str, Any], claims: dict[str, Any], sign: Any = None) -> str:
    """A compact JWS built by hand, signed by ``sign(signing_input) -> bytes`` if given."""
    signing_input = (b64(json.dumps(header).encode()) + "." +
                     b64(json.dumps(claims).encode()))
    signature = sign(signing_input.encode()) if sign else b""
    return signing_input + "." + b64(signature)


def good_claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "aam", "client_id": "aam",
              "exp": now + 600, "iat": now, "jti": "j1", "scope": "segments:write"}
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


@pytest.fixture
def registry(clients: tuple[ClientSettings, ...]) -> ClientRegistry:
    return ClientRegistry.from_settings(clients)


@pytest.fixture
def es256(es256_tokens: TokenSettings, signing_keys: dict[str, Path],
          registry: ClientRegistry) -> tuple[TokenVerifier, Any, str]:
    """(verifier, ES256 private key, kid)"""
    keyset = KeySet.from_settings(es256_tokens)
    private = serialization.load_pem_private_key(signing_keys["ES256"].read_bytes(), None)
    return TokenVerifier(es256_tokens, keyset, registry), private, keyset.signing_kid


def es_sign(private: Any, header: dict[str, Any], claims: dict[str, Any]) -> str:
    return jwt.encode(claims, private, algorithm="ES256", headers=header)


def test_mint_then_verify_every_algorithm(any_tokens: TokenSettings,
                                          registry: ClientRegistry,
                                          clients: tuple[ClientSettings, ...]) -> None:
    keyset = KeySet.from_settings(any_tokens)
    token, expires_in = TokenIssuer(any_tokens, keyset).mint(clients[0], ("segments:write",))
    assert expires_in == any_tokens.ttl_seconds
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "at+jwt" and header["kid"] == any_tokens.keys[0].kid
    claims = jwt.decode(token, keyset.verification_keys[keyset.signing_kid],
                        algorithms=[any_tokens.algorithm], audience=AUDIENCE)
    assert claims["iss"] == ISSUER and claims["sub"] == claims["client_id"] == "aam"
    assert claims["exp"] - claims["iat"] == any_tokens.ttl_seconds
    assert len(claims["jti"]) >= 22 and claims["scope"] == "segments:write"
    verified = TokenVerifier(any_tokens, keyset, registry).verify(token)
    assert verified == VerifiedToken("aam", frozenset({"segments:write"}), claims["exp"],
                                     claims["jti"])


def test_accepted_typ_spellings(es256: tuple[TokenVerifier, Any, str]) -> None:
    verifier, private, kid = es256
    for typ in ("at+jwt", "AT+JWT", "application/at+jwt", "Application/AT+JWT"):
        verifier.verify(es_sign(private, {"kid": kid, "typ": typ}, good_claims()))


def test_jku_and_embedded_jwk_are_never_used(es256: tuple[TokenVerifier, Any, str]) -> None:
    verifier, private, kid = es256
    attacker = ec.generate_private_key(ec.SECP256R1())
    jwk = jwt.algorithms.ECAlgorithm.to_jwk(attacker.public_key(), as_dict=True)
    header = {"kid": kid, "typ": "at+jwt", "jku": "https://evil.test/jwks", "jwk": jwk}
    verifier.verify(es_sign(private, header, good_claims()))  # ignored, configured key used
    with pytest.raises(InvalidTokenError):
        verifier.verify(es_sign(attacker, header, good_claims()))


_ES256 = jwt.algorithms.ECAlgorithm(jwt.algorithms.ECAlgorithm.SHA256)


def _hs256_with_public_pem(private: Any, kid: str) -> str:
    pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    return forge({"alg": "HS256", "typ": "at+jwt", "kid": kid}, good_claims(),
                 lambda data: hmac.new(pem, data, hashlib.sha256).digest())


REFUSALS = {
    "alg none": lambda p, k: forge({"alg": "none", "typ": "at+jwt", "kid": k}, good_claims()),
    "alg None": lambda p, k: forge({"alg": "None", "typ": "at+jwt", "kid": k}, good_claims()),
    "alg NONE": lambda p, k: forge({"alg": "NONE", "typ": "at+jwt", "kid": k}, good_claims()),
    "no alg": lambda p, k: forge({"typ": "at+jwt", "kid": k}, good_claims()),
    "HS256 keyed with ES256 public PEM": _hs256_with_public_pem,
    "unknown kid": lambda p, k: es_sign(p, {"kid": "other", "typ": "at+jwt"}, good_claims()),
    "no kid": lambda p, k: forge({"alg": "ES256", "typ": "at+jwt"}, good_claims()),
    "typ JWT": lambda p, k: es_sign(p, {"kid": k, "typ": "JWT"}, good_claims()),
    "no typ": lambda p, k: es_sign(p, {"kid": k, "typ": None}, good_claims()),
    "crit": lambda p, k: es_sign(p, {"kid": k, "typ": "at+jwt", "crit": ["exp"]},
                                 good_claims()),
    "b64": lambda p, k: forge({"alg": "ES256", "kid": k, "typ": "at+jwt", "b64": True},
                              good_claims(), lambda data: _ES256.sign(data, p)),
    "wrong iss": lambda p, k: es_sign(p, {"kid": k, "typ": "at+jwt"},
                                      good_claims(iss="https://evil.test")),
    "wrong aud": lambda p, k: es_sign(p, {"kid": k, "typ": "at+jwt"}, good_claims(aud="x")),
    "aud list": lambda p, k: es_sign(p, {"kid": k, "typ": "at+jwt"},
                                     good_claims(aud=[AUDIENCE, "x"])),
    "expired": lambda p, k: es_sign(p, {"kid": k, "typ": "at+jwt"},
                                    good_claims(exp=int(time.time()) - 60)),
    "nbf in future": lambda p, k: es_sign(p, {"kid": k, "typ": "at+jwt"},
                                          good_claims(nbf=int(time.time()) + 60)),
    "iat in future": lambda p, k: es_sign(p, {"kid": k, "typ": "at+jwt"},
                                          good_claims(iat=int(time.time()) + 60)),
    "no exp": lambda p, k: es_sign(p, {"kid": k, "typ": "at+jwt"}, good_claims(exp=None)),
    "no jti": lambda p, k: es_sign(p, {"kid": k, "typ": "at+jwt"}, good_claims(jti=None)),
    "sub differs": lambda p, k: es_sign(p, {"kid": k, "typ": "at+jwt"}, good_claims(sub="x")),
    "unknown client": lambda p, k: es_sign(p, {"kid": k, "typ": "at+jwt"},
                                           good_claims(sub="gone", client_id="gone")),
    "oversized": lambda p, k: es_sign(p, {"kid": k, "typ": "at+jwt"},
                                      good_claims(pad="x" * 5000)),
    "tampered signature": lambda p, k: _tamper(es_sign(p, {"kid": k, "typ": "at+jwt"},
                                                       good_claims()), -1),
    "tampered payload": lambda p, k: _swap_payload(es_sign(p, {"kid": k, "typ": "at+jwt"},
                                                           good_claims())),
    "garbage": lambda p, k: "not.a.token",
    "two segments": lambda p, k: "abc.def",
    "empty": lambda p, k: "",
}


def _tamper(token: str, index: int) -> str:
    chars = list(token)
    chars[index - 2] = "A" if chars[index - 2] != "A" else "B"
    return "".join(chars)


def _swap_payload(token: str) -> str:
    header, _, signature = token.split(".")
    return f"{header}.{b64(json.dumps(good_claims(scope='admin')).encode())}.{signature}"


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_refusals_are_generic_invalid_token(es256: tuple[TokenVerifier, Any, str],
                                            case: str) -> None:
    verifier, private, kid = es256
    token = REFUSALS[case](private, kid)
    with pytest.raises(InvalidTokenError) as caught:
        verifier.verify(token)
    # SECURITY: never PyJWT's text, never the token.
    assert caught.value.text == InvalidTokenError.description
    error = caught.value
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__


def test_removed_client_loses_cached_token(es256: tuple[TokenVerifier, Any, str],
                                           clients: tuple[ClientSettings, ...]) -> None:
    verifier, private, kid = es256
    token = es_sign(private, {"kid": kid, "typ": "at+jwt"}, good_claims())
    verifier.verify(token)
    verifier.replace(registry=ClientRegistry.from_settings(clients[1:]))
    with pytest.raises(InvalidTokenError):
        verifier.verify(token)


def test_rotation_token_of_listed_second_key_verifies(
        signing_keys: dict[str, Path], registry: ClientRegistry,
        clients: tuple[ClientSettings, ...]) -> None:
    old_settings = token_settings("ES256", [SigningKeySettings(
        kid="old", private_key_file=signing_keys["ES256-2"])])
    old_token, _ = TokenIssuer(old_settings, KeySet.from_settings(old_settings)).mint(
        clients[0], ("segments:write",))
    both = token_settings("ES256", [
        SigningKeySettings(kid="new", private_key_file=signing_keys["ES256"]),
        SigningKeySettings(kid="old", private_key_file=signing_keys["ES256-2"])])
    verifier = TokenVerifier(both, KeySet.from_settings(both), registry)
    assert verifier.verify(old_token).client_id == "aam"
    only_new = replace(both, keys=both.keys[:1])
    verifier.replace(keyset=KeySet.from_settings(only_new))
    with pytest.raises(InvalidTokenError):
        verifier.verify(old_token)


def test_cache_hit_and_never_past_exp(es256: tuple[TokenVerifier, Any, str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    verifier, private, kid = es256
    now = int(time.time())
    token = es_sign(private, {"kid": kid, "typ": "at+jwt"}, good_claims(exp=now + 100))
    first = verifier.verify(token)
    assert verifier.verify(token) is first  # served from the cache
    # Within the leeway after exp the token still verifies, but afresh and uncached.
    monkeypatch.setattr(tokens_module.time, "time", lambda: now + 102.0)
    late = verifier.verify(token)
    assert late == first and late is not first and verifier.verify(token) is not late
    # Past exp and the leeway: refused, whatever the cache held.
    monkeypatch.setattr(tokens_module.time, "time", lambda: now + 200.0)
    with pytest.raises(InvalidTokenError):
        verifier.verify(token)


def test_clear_forgets_verdicts(es256: tuple[TokenVerifier, Any, str]) -> None:
    verifier, private, kid = es256
    token = es_sign(private, {"kid": kid, "typ": "at+jwt"}, good_claims())
    first = verifier.verify(token)
    verifier.clear()
    second = verifier.verify(token)
    assert second == first and second is not first


def test_no_token_in_logs(es256: tuple[TokenVerifier, Any, str],
                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    verifier, private, kid = es256
    tokens = [REFUSALS[case](private, kid) for case in ("expired", "tampered signature")]
    for token in tokens:
        with pytest.raises(InvalidTokenError):
            verifier.verify(token)
    text = caplog.text + " ".join(str(r.__dict__) for r in caplog.records)
    for token in tokens:
        assert token not in text and token.split(".")[2] not in text
    assert "reason_id" in str(caplog.records[0].__dict__)


def test_the_cache_is_bounded_least_recently_used_first(
        es256: tuple[TokenVerifier, Any, str]) -> None:
    verifier, private, kid = es256
    now = int(time.time())
    short = es_sign(private, {"kid": kid, "typ": "at+jwt"}, good_claims(exp=now + 2))
    verifier.verify(short)
    for index in range(tokens_module.CACHE_SIZE + 10):
        claims = {**good_claims(exp=now + 3600), "jti": f"jti-{index}"}
        verifier.verify(es_sign(private, {"kid": kid, "typ": "at+jwt"}, claims))
        if index == 0:
            assert len(verifier._cache) == 2
    # Full, the least recently used (here the first) made room; never more than the bound.
    assert len(verifier._cache) == tokens_module.CACHE_SIZE
    assert short not in verifier._cache
