"""Fixtures of the OAuth unit tests: token settings per algorithm and clients whose slow
scrypt hashes are made once per session."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from gateway.config import ClientSettings, SigningKeySettings, TokenSettings
from gateway.config.hashes import PasswordHash, hash_opaque, hash_secret, parse_hash

SECRET = "correct horse:battery+staple%"
OTHER_SECRET = "second-secret-during-rotation"
SEED_CREDENTIAL = "zq2LOO1CcYGrODS5nXiNHpEz97eCpVHAoMF8pAgCntXAzxp5uRV7DTAE2qtPLjhMQwrEX3O6MHV4S"
HS_SECRET = "an-hs256-secret-that-is-long-enough-0123456789"
ISSUER = "https://gateway.test"
AUDIENCE = "partner-api"


@pytest.fixture(scope="session")
def secret_hash() -> PasswordHash:
    return parse_hash(hash_secret(SECRET))


@pytest.fixture(scope="session")
def other_secret_hash() -> PasswordHash:
    return parse_hash(hash_secret(OTHER_SECRET))


@pytest.fixture(scope="session")
def clients(secret_hash: PasswordHash) -> tuple[ClientSettings, ...]:
    return (
        ClientSettings(client_id="aam", secret_hashes=(secret_hash,),
                       credential_hashes=(parse_hash(hash_opaque(SEED_CREDENTIAL)),),
                       scopes=("segments:write", "segments:read")),
        ClientSettings(client_id="poster", secret_hashes=(secret_hash,), scopes=("read",),
                       client_secret_post=True),
        ClientSettings(client_id="opaque-only",
                       credential_hashes=(parse_hash(hash_opaque("x" * 43)),),
                       scopes=("read",)),
    )


def token_settings(algorithm: str, keys: list[SigningKeySettings], **changes: object
                   ) -> TokenSettings:
    base = TokenSettings(issuer=ISSUER, audience=AUDIENCE, algorithm=algorithm,  # type: ignore[arg-type]
                         keys=tuple(keys), leeway_seconds=5, ttl_seconds=600)
    return replace(base, **changes)  # type: ignore[arg-type]


def settings_for(algorithm: str, signing_keys: dict[str, Path]) -> TokenSettings:
    if algorithm == "HS256":
        return token_settings("HS256", [SigningKeySettings(kid="h1", secret=HS_SECRET)])
    return token_settings(algorithm, [SigningKeySettings(
        kid=f"{algorithm.lower()}-1", private_key_file=signing_keys[algorithm])])


@pytest.fixture(params=["ES256", "RS256", "EdDSA", "HS256"])
def any_tokens(request: pytest.FixtureRequest, signing_keys: dict[str, Path]) -> TokenSettings:
    return settings_for(request.param, signing_keys)


@pytest.fixture
def es256_tokens(signing_keys: dict[str, Path]) -> TokenSettings:
    return settings_for("ES256", signing_keys)
