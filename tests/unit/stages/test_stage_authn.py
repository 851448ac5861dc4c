"""Stage 3, ``extract_bearer`` and ``check_bearer``: one bearer token in one place, verified,
with the route's scope (RFC 6750 §2.1, §3.1)."""

from __future__ import annotations

import pytest

from gateway.config import ClientSettings, SigningKeySettings, TokenSettings
from gateway.errors import (
    GatewayError,
    InsufficientScopeError,
    InvalidRequestError,
    InvalidTokenError,
    MissingTokenError,
)
from gateway.oauth.clients import ClientRegistry
from gateway.oauth.keys import KeySet
from gateway.oauth.tokens import TokenIssuer, TokenVerifier
from gateway.stages.authn import check_bearer, extract_bearer

from stage_harness import mocked

REALM = "partner"
TOKENS = TokenSettings(issuer="https://gateway.test", audience="partner-api", algorithm="HS256",
                       keys=(SigningKeySettings(kid="h1", secret="s" * 48),), realm=REALM)
CLIENT = ClientSettings(client_id="aam", scopes=("segments:write", "segments:read"))


def parts(tokens: TokenSettings = TOKENS) -> tuple[TokenIssuer, TokenVerifier]:
    keyset = KeySet.from_settings(tokens)
    registry = ClientRegistry.from_settings((CLIENT,), realm=REALM)
    return TokenIssuer(tokens, keyset), TokenVerifier(tokens, keyset, registry)


def bearer(value: str) -> list[tuple[str, str]]:
    return [("Authorization", value)]


async def test_the_one_bearer_token_is_returned() -> None:
    assert extract_bearer(mocked(headers=bearer("Bearer abc.def-_~+/==")), REALM) \
        == "abc.def-_~+/=="
    assert extract_bearer(mocked(headers=bearer("bearer  tok ")), REALM) == "tok"


@pytest.mark.parametrize("headers", [[], bearer("Basic YWFtOnNlY3JldA==")], ids=["none", "basic"])
async def test_no_bearer_token_is_401_without_an_error_code(headers: list[tuple[str, str]]
                                                            ) -> None:
    with pytest.raises(MissingTokenError) as caught:
        extract_bearer(mocked(headers=headers), REALM)
    assert caught.value.status_code == 401
    assert caught.value.extra_headers["WWW-Authenticate"] == f'Bearer realm="{REALM}"'


@pytest.mark.parametrize(("headers", "path"), [
    (bearer("Bearer a") + bearer("Bearer b"), "/segments/aam"),
    (bearer("Bearer not a token"), "/segments/aam"),
    (bearer("Bearer tok*en"), "/segments/aam"),
    (bearer("Bearer"), "/segments/aam"),
    (bearer("Bearer tok"), "/segments/aam?access_token=tok"),
], ids=["header-twice", "spaces", "bad-characters", "scheme-only", "also-in-query"])
async def test_a_malformed_token_is_400_invalid_request(headers: list[tuple[str, str]],
                                                        path: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        extract_bearer(mocked(path=path, headers=headers), REALM)
    assert (caught.value.status_code, caught.value.error) == (400, "invalid_request")
    assert caught.value.extra_headers["WWW-Authenticate"] == \
        f'Bearer realm="{REALM}", error="invalid_request"'


async def test_a_valid_token_with_the_scope_passes() -> None:
    issuer, verifier = parts()
    token, _ = issuer.mint(CLIENT, ("segments:write",))
    verified = check_bearer(mocked(headers=bearer(f"Bearer {token}")), verifier,
                            "segments:write", REALM)
    assert verified.client_id == "aam"
    assert check_bearer(mocked(headers=bearer(f"Bearer {token}")), verifier, None,
                        REALM).client_id == "aam"


async def test_a_missing_scope_is_403_insufficient_scope() -> None:
    issuer, verifier = parts()
    token, _ = issuer.mint(CLIENT, ("segments:read",))
    with pytest.raises(InsufficientScopeError) as caught:
        check_bearer(mocked(headers=bearer(f"Bearer {token}")), verifier, "segments:write",
                     REALM)
    assert (caught.value.status_code, caught.value.error) == (403, "insufficient_scope")


async def test_a_token_of_another_key_is_401_invalid_token() -> None:
    other = TokenSettings(issuer=TOKENS.issuer, audience=TOKENS.audience, algorithm="HS256",
                          keys=(SigningKeySettings(kid="h1", secret="t" * 48),), realm=REALM)
    token, _ = parts(other)[0].mint(CLIENT, ("segments:write",))
    with pytest.raises(InvalidTokenError) as caught:
        check_bearer(mocked(headers=bearer(f"Bearer {token}")), parts()[1], "segments:write",
                     REALM)
    assert (caught.value.status_code, caught.value.error) == (401, "invalid_token")


async def test_check_bearer_refuses_what_extract_bearer_refuses() -> None:
    with pytest.raises(GatewayError) as caught:
        check_bearer(mocked(), parts()[1], None, REALM)
    assert isinstance(caught.value, MissingTokenError)

