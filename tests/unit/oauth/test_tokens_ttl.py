"""Per-client token lifetimes (``clients[].ttl_seconds``): the issuer mints each client's
own ``exp`` and ``expires_in``, and what reads ``exp`` afterwards (the verified-token cache,
revocation, introspection) follows each token's own, never one lifetime for all."""

from __future__ import annotations

import time
from dataclasses import replace

import jwt
import pytest

from gateway.config import ClientSettings, TokenSettings
from gateway.errors import InvalidTokenError
from gateway.oauth.clients import ClientRegistry
from gateway.oauth.keys import KeySet
from gateway.oauth.tokens import TokenIssuer, TokenVerifier

from .conftest import AUDIENCE

DAY = 86400


@pytest.fixture
def two_clients(clients: tuple[ClientSettings, ...]) -> tuple[ClientSettings, ClientSettings]:
    """IRIS on the section's lifetime and an AEP client of its own 24 h."""
    iris = clients[0]
    aep = replace(clients[1], client_id="aep", ttl_seconds=DAY)
    return iris, aep


def test_each_client_gets_its_own_lifetime(es256_tokens: TokenSettings,
                                           two_clients: tuple[ClientSettings, ClientSettings],
                                           ) -> None:
    keyset = KeySet.from_settings(es256_tokens)
    issuer = TokenIssuer(es256_tokens, keyset)
    iris, aep = two_clients
    for client, lifetime in ((iris, es256_tokens.ttl_seconds), (aep, DAY)):
        token, expires_in = issuer.mint(client, ("read",))
        claims = jwt.decode(token, keyset.verification_keys[keyset.signing_kid],
                            algorithms=["ES256"], audience=AUDIENCE)
        assert expires_in == lifetime
        assert claims["exp"] - claims["iat"] == lifetime
    assert issuer.ttl_seconds == es256_tokens.ttl_seconds == 600


def test_cache_and_revocation_follow_each_tokens_own_exp(
        es256_tokens: TokenSettings, two_clients: tuple[ClientSettings, ClientSettings],
        monkeypatch: pytest.MonkeyPatch) -> None:
    keyset = KeySet.from_settings(es256_tokens)
    iris, aep = two_clients
    revoked: set[str] = set()
    verifier = TokenVerifier(es256_tokens, keyset, ClientRegistry.from_settings((iris, aep)),
                             revoked)
    issuer = TokenIssuer(es256_tokens, keyset)
    short, _ = issuer.mint(iris, ("read",))
    long, _ = issuer.mint(aep, ("read",))
    short_facts, long_facts = verifier.verify(short), verifier.verify(long)
    assert long_facts.exp - short_facts.exp == DAY - es256_tokens.ttl_seconds
    # An hour on: IRIS's 10-minute token has expired, cached or not; AEP's is still good.
    now = time.time() + 3600
    monkeypatch.setattr(time, "time", lambda: now)
    with pytest.raises(InvalidTokenError):
        verifier.verify(short)
    assert verifier.verify(long) == long_facts
    assert verifier.introspect(long) is not None
    # A revocation of the long-lived token holds on the cached verdict too.
    revoked.add(long_facts.jti)
    with pytest.raises(InvalidTokenError):
        verifier.verify(long)

