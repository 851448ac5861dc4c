"""ClientRegistry: both Basic forms, client_secret_post, generic failures, one slow hash
per attempt, and the cache of successful verifications."""

from __future__ import annotations

import base64
import contextlib
import logging
from unittest import mock
from urllib.parse import quote_plus

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.config import ClientSettings
from gateway.config.hashes import PasswordHash
from gateway.errors import GatewayError, InvalidClientError, InvalidRequestError
from gateway.oauth.clients import ClientRegistry, parse_basic

from .conftest import OTHER_SECRET, SECRET, SEED_CREDENTIAL


def basic(client_id: str, secret: str, scheme: str = "Basic") -> str:
    pair = f"{quote_plus(client_id)}:{quote_plus(secret)}"
    return f"{scheme} {base64.b64encode(pair.encode()).decode()}"


@pytest.fixture
def registry(clients: tuple[ClientSettings, ...]) -> ClientRegistry:
    return ClientRegistry.from_settings(clients, realm="partner")


async def test_rfc_form_with_encoded_secret(registry: ClientRegistry) -> None:
    # The secret holds ':', '+', '%' and a space: all form-urlencoded before base64.
    assert (await registry.authenticate_basic(basic("aam", SECRET))).client_id == "aam"


@pytest.mark.parametrize("scheme", ["Basic", "basic", "BASIC", "bAsIc"])
async def test_adobes_sample_opaque_credential_any_scheme_case(registry: ClientRegistry,
                                                              scheme: str) -> None:
    client = await registry.authenticate_basic(f"{scheme} {SEED_CREDENTIAL}")
    assert client.client_id == "aam"


async def test_opaque_only_client(registry: ClientRegistry) -> None:
    assert (await registry.authenticate_basic("Basic " + "x" * 43)).client_id == "opaque-only"


@pytest.mark.parametrize("value", [
    basic("aam", "wrong"),
    basic("nobody", SECRET),
    basic("opaque-only", SECRET),          # a client without secret_hash
    "Basic " + SEED_CREDENTIAL[:-1],        # unknown opaque credential
    "Basic " + base64.b64encode(b"no-colon").decode(),
    "Bearer " + SEED_CREDENTIAL,            # another scheme: unsupported method
])
async def test_failures_are_one_generic_error(registry: ClientRegistry, value: str) -> None:
    with pytest.raises(InvalidClientError) as caught:
        await registry.authenticate_basic(value)
    assert caught.value.text == InvalidClientError.description
    assert caught.value.headers() == {"WWW-Authenticate": 'Basic realm="partner"'}


@pytest.mark.parametrize("value", ["Basic", "Basic ", "Basic a b", "Basic \x00abc",
                                   "Basic " + "a" * 5000])
async def test_malformed_header_is_invalid_request(registry: ClientRegistry, value: str) -> None:
    with pytest.raises(InvalidRequestError):
        await registry.authenticate_basic(value)


async def test_at_most_one_slow_hash_per_attempt(registry: ClientRegistry) -> None:
    with mock.patch.object(PasswordHash, "verify", autospec=True,
                           return_value=False) as verify:
        for value in (basic("aam", "wrong"), basic("nobody", "x")):
            with pytest.raises(InvalidClientError):
                await registry.authenticate_basic(value)
            assert verify.call_count == 1
            verify.reset_mock()
        # The opaque form costs no slow hash at all.
        await registry.authenticate_basic(f"Basic {SEED_CREDENTIAL}")
        assert verify.call_count == 0


async def test_unknown_client_still_runs_a_scrypt_check(registry: ClientRegistry) -> None:
    with mock.patch.object(PasswordHash, "verify", autospec=True,
                           return_value=False) as verify, pytest.raises(InvalidClientError):
        await registry.authenticate_basic(basic("nobody", SECRET))
    (stored, _), _ = verify.call_args
    assert stored.scheme == "scrypt"


async def test_success_is_cached_failures_are_not(registry: ClientRegistry) -> None:
    value = basic("aam", SECRET)
    await registry.authenticate_basic(value)
    with mock.patch.object(PasswordHash, "verify", autospec=True) as verify:
        for _ in range(3):
            assert (await registry.authenticate_basic(value)).client_id == "aam"
        assert verify.call_count == 0
        verify.return_value = False
        with pytest.raises(InvalidClientError):
            await registry.authenticate_basic(basic("aam", SECRET + "x"))
        with pytest.raises(InvalidClientError):
            await registry.authenticate_basic(basic("aam", SECRET + "x"))
        assert verify.call_count == 2


async def test_rotated_secrets_both_work(secret_hash: PasswordHash,
                                   other_secret_hash: PasswordHash) -> None:
    registry = ClientRegistry.from_settings([ClientSettings(
        client_id="r", secret_hashes=(secret_hash, other_secret_hash))])
    assert (await registry.authenticate_basic(basic("r", SECRET))).client_id == "r"
    assert (await registry.authenticate_basic(basic("r", OTHER_SECRET))).client_id == "r"


async def test_client_secret_post(registry: ClientRegistry) -> None:
    assert (await registry.authenticate_post("poster", SECRET)).client_id == "poster"
    with pytest.raises(InvalidClientError):
        await registry.authenticate_post("poster", "wrong")
    # "aam" has not enabled client_secret_post: refused even with the right secret.
    with pytest.raises(InvalidClientError):
        await registry.authenticate_post("aam", SECRET)


def test_get_and_membership(registry: ClientRegistry) -> None:
    assert registry.get("aam") is not None and registry.get("zzz") is None
    assert "aam" in registry and "zzz" not in registry and len(registry) == 3


async def test_no_credential_in_logs(registry: ClientRegistry,
                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for value in (basic("aam", "wrong-secret-xyz"), "Basic " + SEED_CREDENTIAL[:-1]):
        with pytest.raises(InvalidClientError):
            await registry.authenticate_basic(value)
    await registry.authenticate_basic(basic("aam", SECRET))
    text = caplog.text + " ".join(str(r.__dict__) for r in caplog.records)
    assert "wrong-secret-xyz" not in text and SEED_CREDENTIAL[:-1] not in text
    assert SECRET not in text and basic("aam", SECRET).split()[1] not in text


def test_parse_basic_pair() -> None:
    parsed = parse_basic(basic("a b", "c:d"))
    assert parsed.pair == ("a b", "c:d")
    assert parse_basic("Basic " + SEED_CREDENTIAL).pair is None


@given(st.text())
def test_parse_basic_raises_only_gateway_errors(value: str) -> None:
    with contextlib.suppress(GatewayError):
        parse_basic(value)


@given(st.binary(max_size=200))
def test_parse_basic_of_any_base64_payload(raw: bytes) -> None:
    with contextlib.suppress(GatewayError):
        parse_basic("Basic " + base64.b64encode(raw).decode())
