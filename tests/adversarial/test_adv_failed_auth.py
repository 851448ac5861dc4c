"""The failed-authentication limit under attack, over real TLS (docs/security.md, "Failed
authentications"): held-back bodies cannot multiply the credential checks, an IPv6 guesser
counts by its /64, a blocked address still takes IRIS's opaque credential, and a flood of
slow-hash guesses does not stall the pushes served by the same process.

Attackers send raw requests whose head goes first and whose body follows later (the shape
of the outside attack run), on many TLS connections at once.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from gateway.config import Settings
from gateway.config.hashes import hash_secret
from gateway.serve.server import RunningGateway

from adv_harness import (
    CLIENT_ID,
    CLIENT_SECRET,
    SEED_CREDENTIAL,
    SEED_PAYLOAD,
    assert_error_body,
    basic,
    read_answer,
)
from proc_harness import GatewayProcess

GRANT = b"grant_type=client_credentials"
Start = Callable[..., Awaitable[RunningGateway]]


def _token_head(authorization: str, *, forwarded_for: str | None = None) -> bytes:
    extra = f"X-Forwarded-For: {forwarded_for}\r\n" if forwarded_for else ""
    return (f"POST /oauth2/token HTTP/1.1\r\nHost: localhost\r\nAuthorization: {authorization}"
            f"\r\nContent-Type: application/x-www-form-urlencoded\r\n{extra}"
            f"Content-Length: {len(GRANT)}\r\n\r\n").encode()


async def _held_back(port: int, context: ssl.SSLContext, heads: list[bytes],
                     pause: float = 1.0) -> list[int]:
    """Open one TLS connection per head, send every head, then (``pause`` later, as the
    attack did) every body; the status each got."""
    async with asyncio.timeout(30):
        streams = await asyncio.gather(*(asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname="localhost") for _ in heads))
        try:
            for (_, writer), head in zip(streams, heads, strict=True):
                writer.write(head)
            await asyncio.gather(*(writer.drain() for _, writer in streams))
            await asyncio.sleep(pause)  # pacing only: the bodies come "a second later"
            for _, writer in streams:
                writer.write(GRANT)
            answers = await asyncio.gather(*(read_answer(reader) for reader, _ in streams))
        finally:
            for _, writer in streams:
                writer.close()
    for answer in answers:
        if answer.status >= 400:
            assert_error_body(answer)
    return [answer.status for answer in answers]


async def _token_status(session: aiohttp.ClientSession, port: int, authorization: str,
                        **headers: str) -> tuple[int, dict[str, Any]]:
    async with session.post(f"https://localhost:{port}/oauth2/token", data=GRANT,
                            headers={"Authorization": authorization, **headers,
                                     "Content-Type": "application/x-www-form-urlencoded"}
                            ) as response:
        return response.status, await response.json()


async def _gateway(backend: tuple[str, Any], adv_config: Callable[..., dict[str, Any]],
                   write_config: Callable[[dict[str, Any]], Settings], start: Start,
                   per_minute: int, **server: Any) -> RunningGateway:
    config = adv_config(backend[0] + "/segments/aam")
    config["tokens"]["failed_auth_per_minute"] = per_minute
    config["server"].update(server)
    return await start(write_config(config))


async def test_held_back_bodies_get_at_most_the_limits_worth_of_checks(
        backend: tuple[str, Any], adv_config: Callable[..., dict[str, Any]],
        write_config: Callable[[dict[str, Any]], Settings], start: Start,
        client_ssl_ctx: ssl.SSLContext) -> None:
    # Before: the limit was consulted when the head arrived and a failure recorded only
    # after the body, so 50 held-back bodies got 50 credential checks (50 x 401).
    limit = 5
    running = await _gateway(backend, adv_config, write_config, start, limit)
    heads = [_token_head(basic(CLIENT_ID, f"guess-{i}")) for i in range(50)]
    statuses = Counter(await _held_back(running.ports["https"], client_ssl_ctx, heads))
    assert set(statuses) <= {401, 429}, statuses
    assert statuses[401] <= limit, statuses  # each 401 is one credential check
    assert statuses[429] >= 50 - limit, statuses


async def test_an_ipv6_guesser_counts_by_its_64(
        backend: tuple[str, Any], adv_config: Callable[..., dict[str, Any]],
        write_config: Callable[[dict[str, Any]], Settings], start: Start,
        session: aiohttp.ClientSession) -> None:
    # The callers' addresses come from a trusted proxy's X-Forwarded-For (loopback here).
    running = await _gateway(backend, adv_config, write_config, start, 3,
                             trusted_proxies=["127.0.0.1/32"])
    port = running.ports["https"]
    wrong = basic(CLIENT_ID, "wrong")
    for host in ("2001:db8:1:2::a", "2001:db8:1:2::b", "2001:db8:1:2:ffff:ffff:ffff:ffff"):
        status, _ = await _token_status(session, port, wrong, **{"X-Forwarded-For": host})
        assert status == 401, host
    # Before: each address was its own bucket, so a /64 gave 2^64 times the limit.
    status, body = await _token_status(session, port, basic(CLIENT_ID, CLIENT_SECRET),
                                       **{"X-Forwarded-For": "2001:db8:1:2:1234::1"})
    assert (status, body["error"]) == (429, "rate_limited")
    # The next /64 and an IPv4 address are someone else.
    status, _ = await _token_status(session, port, basic(CLIENT_ID, CLIENT_SECRET),
                                    **{"X-Forwarded-For": "2001:db8:1:3::a"})
    assert status == 200
    status, _ = await _token_status(session, port, basic(CLIENT_ID, CLIENT_SECRET),
                                    **{"X-Forwarded-For": "192.0.2.7"})
    assert status == 200


async def test_a_blocked_address_still_takes_the_opaque_credential(
        backend: tuple[str, Any], adv_config: Callable[..., dict[str, Any]],
        write_config: Callable[[dict[str, Any]], Settings], start: Start,
        session: aiohttp.ClientSession) -> None:
    running = await _gateway(backend, adv_config, write_config, start, 3)
    port = running.ports["https"]
    for i in range(3):  # someone sharing IRIS's address fails on purpose
        assert (await _token_status(session, port, basic(CLIENT_ID, f"x{i}")))[0] == 401
    # Before: IRIS's correct credential got 429 for the rest of the minute.
    status, body = await _token_status(session, port, f"Basic {SEED_CREDENTIAL}")
    assert status == 200, body
    async with session.post(f"https://localhost:{port}/segments/aam", data=SEED_PAYLOAD,
                            headers={"Authorization": f"Bearer {body['access_token']}",
                                     "Content-Type": "application/json"}) as response:
        assert response.status == 200
    # Failures still count and still get 429: a wrong opaque value, the RFC form (even the
    # right secret: a guessable form of credential must not tell a guess from a hit).
    for authorization in (f"Basic {SEED_CREDENTIAL[:-1]}x", basic(CLIENT_ID, "x3"),
                          basic(CLIENT_ID, CLIENT_SECRET)):
        status, body = await _token_status(session, port, authorization)
        assert (status, body["error"]) == (429, "rate_limited"), authorization


async def test_a_flood_of_slow_hash_guesses_does_not_stall_pushes(
        backend: tuple[str, Any], adv_config: Callable[..., dict[str, Any]],
        write_config: Callable[[dict[str, Any]], Settings], tmp_path: Path,
        session: aiohttp.ClientSession, client_ssl_ctx: ssl.SSLContext) -> None:
    # Its own process: in this one the test's clients would stall with the gateway's loop
    # and never see the stall they measure.
    config = adv_config(backend[0] + "/segments/aam")
    for client in config["clients"]:  # the real cost (ln=14), not the suite's cheap hash
        client["secret_hash"] = hash_secret(CLIENT_SECRET)
    write_config(config)
    gateway = GatewayProcess(tmp_path / "config.yaml")
    try:
        port = (await gateway.serving())["https"]
        await _flood_while_pushing(port, session, client_ssl_ctx)
    finally:
        gateway.kill()


async def _flood_while_pushing(port: int, session: aiohttp.ClientSession,
                               client_ssl_ctx: ssl.SSLContext) -> None:
    status, body = await _token_status(session, port, f"Basic {SEED_CREDENTIAL}")
    assert status == 200
    token = body["access_token"]
    latencies: list[float] = []
    flood_over = asyncio.Event()

    async def push_every_50_ms() -> None:
        while not flood_over.is_set():
            began = time.perf_counter()
            async with session.post(f"https://localhost:{port}/segments/aam",
                                    data=SEED_PAYLOAD,
                                    headers={"Authorization": f"Bearer {token}",
                                             "Content-Type": "application/json"}) as response:
                assert response.status == 200
            latencies.append(time.perf_counter() - began)
            await asyncio.sleep(0.05)

    async def flood() -> list[int]:
        heads = [_token_head(basic(CLIENT_ID, f"guess-{i}")) for i in range(60)]
        try:
            return await _held_back(port, client_ssl_ctx, heads, pause=0.3)
        finally:
            flood_over.set()

    async with asyncio.timeout(60):
        pusher = asyncio.create_task(push_every_50_ms())
        statuses = Counter(await flood())
        # Another client's token request right after the flood: the opaque credential never
        # waits behind the slow hashes.
        began = time.perf_counter()
        assert (await _token_status(session, port, f"Basic {SEED_CREDENTIAL}"))[0] == 200
        opaque_took = time.perf_counter() - began
        await pusher
    # Every guess was checked or refused at once for lack of room, never answered 200.
    assert set(statuses) <= {401, 503}, statuses
    assert statuses[401] >= 10, statuses  # the flood was real: this many slow hashes ran
    assert len(latencies) >= 5, latencies
    # Before: the hashes ran on the event loop, one after the other, and a push waited for
    # them (1.8 s in the attack run; 60 x ~50 ms here). A generous bound: a fraction.
    assert max(latencies) < 1.0, sorted(latencies)[-5:]
    assert opaque_took < 1.0
