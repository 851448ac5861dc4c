"""Tokens outliving a client's credentials, and a client's removal (docs/architecture.md).

A token is a bearer credential of its own: rotating the client's secret does not revoke the
tokens already minted with the old one, which stay valid until ``exp`` (at most
``tokens.ttl_seconds``; README, Security). Removing the client does: its tokens are refused
at once. Each configuration runs as its own gateway over real TLS, all sharing the signing
key, exactly as a restart (or a reload) with the edited file would.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from gateway.config import Settings
from gateway.serve.server import RunningGateway

from adv_harness import (
    CLIENT_ID,
    CLIENT_SECRET,
    SEED_PAYLOAD,
    assert_error_body,
    backend_count,
    basic,
    cheap_hash,
    fetch_token,
)

NEW_SECRET = "rotated-secret-for-tests-only"


async def _push(session: aiohttp.ClientSession, port: int, token: str) -> tuple[int, bytes]:
    async with session.post(f"https://localhost:{port}/segments/aam", data=SEED_PAYLOAD,
                            headers={"Authorization": f"Bearer {token}",
                                     "Content-Type": "application/json"}) as response:
        return response.status, await response.read()


async def _token_status(session: aiohttp.ClientSession, port: int, secret: str) -> int:
    async with session.post(f"https://localhost:{port}/oauth2/token",
                            data={"grant_type": "client_credentials"},
                            headers={"Authorization": basic(CLIENT_ID, secret)}) as response:
        return response.status


async def test_rotation_keeps_minted_tokens_until_expiry_and_removal_ends_them(
        backend: tuple[str, Any], adv_config: Callable[..., dict[str, Any]],
        write_config: Callable[[dict[str, Any]], Settings],
        start: Callable[[Settings], Awaitable[RunningGateway]],
        session: aiohttp.ClientSession) -> None:
    original = adv_config(backend[0] + "/segments/aam")
    first = await start(write_config(original))
    token = await fetch_token(session, first.ports["https"])

    rotated = copy.deepcopy(original)
    client = next(c for c in rotated["clients"] if c["client_id"] == CLIENT_ID)
    client["secret_hash"] = cheap_hash(NEW_SECRET)
    del client["credential_hash"]
    second = await start(write_config(rotated))

    removed = copy.deepcopy(original)
    removed["clients"] = [c for c in removed["clients"] if c["client_id"] != CLIENT_ID]
    third = await start(write_config(removed))

    before = await backend_count(backend[0])
    # Rotated: the old secret no longer buys a token, the new one does ...
    assert await _token_status(session, second.ports["https"], CLIENT_SECRET) == 401
    assert await _token_status(session, second.ports["https"], NEW_SECRET) == 200
    # ... yet the token minted with the old secret still works until it expires.
    status, body = await _push(session, second.ports["https"], token)
    assert status == 200, body
    assert await backend_count(backend[0]) == before + 1

    # Removed: the same token is refused at once, and nothing reaches the backend.
    status, body = await _push(session, third.ports["https"], token)
    assert status == 401
    assert assert_error_body((status, body))["error"] == "invalid_token"
    assert await _token_status(session, third.ports["https"], CLIENT_SECRET) == 401
    assert await backend_count(backend[0]) == before + 1
    # And the original configuration still takes it: the refusal was the removal's doing.
    assert (await _push(session, first.ports["https"], token))[0] == 200


async def test_a_reload_that_removes_the_client_refuses_its_cached_token_at_once(
        backend: tuple[str, Any], adv_config: Callable[..., dict[str, Any]],
        write_config: Callable[[dict[str, Any]], Settings],
        start: Callable[[Settings], Awaitable[RunningGateway]],
        session: aiohttp.ClientSession) -> None:
    original = adv_config(backend[0] + "/segments/aam")
    running = await start(write_config(original))
    port = running.ports["https"]
    token = await fetch_token(session, port)
    assert (await _push(session, port, token))[0] == 200  # now in the verifier's cache

    rotated = copy.deepcopy(original)
    client = next(c for c in rotated["clients"] if c["client_id"] == CLIENT_ID)
    client["secret_hash"] = cheap_hash(NEW_SECRET)
    write_config(rotated)
    assert await running.reload()
    assert await _token_status(session, port, CLIENT_SECRET) == 401
    assert (await _push(session, port, token))[0] == 200

    removed = copy.deepcopy(original)
    removed["clients"] = [c for c in removed["clients"] if c["client_id"] != CLIENT_ID]
    write_config(removed)
    assert await running.reload()
    before = await backend_count(backend[0])
    status, body = await _push(session, port, token)
    assert status == 401, body
    assert assert_error_body((status, body))["error"] == "invalid_token"
    assert await backend_count(backend[0]) == before


async def _last_forwarded(base_url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as client, \
            client.get(base_url + "/_stats") as response:
        return dict((await response.json())["last"]["headers"])


async def test_a_reload_narrowing_a_clients_scopes_or_networks_binds_its_live_tokens(
        backend: tuple[str, Any], adv_config: Callable[..., dict[str, Any]],
        write_config: Callable[[dict[str, Any]], Settings],
        start: Callable[[Settings], Awaitable[RunningGateway]],
        session: aiohttp.ClientSession) -> None:
    """A token is checked against its client's configuration of the moment: a scope removed
    by a reload is gone from ``X-Gateway-Scope`` and, if the route needs it, the next push
    is ``403 insufficient_scope``; ``allowed_cidrs`` added by a reload apply at once. The
    outside attack run kept pushing with the removed scope, forwarded to the backend."""
    original = adv_config(backend[0] + "/segments/aam", identity_headers=True)
    client = next(c for c in original["clients"] if c["client_id"] == CLIENT_ID)
    client["scopes"] = ["segments:write", "segments:audit"]
    running = await start(write_config(original))
    port = running.ports["https"]
    token = await fetch_token(session, port)
    assert (await _push(session, port, token))[0] == 200  # now in the verifier's cache
    assert (await _last_forwarded(backend[0]))["X-Gateway-Scope"] == (
        "segments:audit segments:write")

    def reload_with(scopes: list[str], cidrs: list[str] | None = None) -> dict[str, Any]:
        edited = copy.deepcopy(original)
        mine = next(c for c in edited["clients"] if c["client_id"] == CLIENT_ID)
        mine["scopes"] = scopes
        if cidrs is not None:
            mine["allowed_cidrs"] = cidrs
        return edited

    write_config(reload_with(["segments:write"]))
    assert await running.reload()
    assert (await _push(session, port, token))[0] == 200
    assert (await _last_forwarded(backend[0]))["X-Gateway-Scope"] == "segments:write"

    write_config(reload_with(["segments:audit"]))
    assert await running.reload()
    before = await backend_count(backend[0])
    status, body = await _push(session, port, token)
    assert status == 403, body
    assert assert_error_body((status, body))["error"] == "insufficient_scope"
    assert await backend_count(backend[0]) == before

    write_config(reload_with(["segments:write", "segments:audit"], ["192.0.2.0/24"]))
    assert await running.reload()
    status, body = await _push(session, port, token)
    assert status == 403, body
    assert await backend_count(backend[0]) == before

    write_config(original)  # back as it was: the same token serves again, both scopes
    assert await running.reload()
    assert (await _push(session, port, token))[0] == 200
    assert (await _last_forwarded(backend[0]))["X-Gateway-Scope"] == (
        "segments:audit segments:write")
