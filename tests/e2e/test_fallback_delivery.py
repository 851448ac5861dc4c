"""``delivery: fallback`` with the real sample backend as its own process (docs/configuration.md
``delivery``): the backend's own answer when it answers, the spool when it does not, always
inside IRIS's 3 s, and nothing lost across a ``kill -9`` of the gateway.

Every wait is bounded by a deadline; every process started here is killed at the end."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from gateway.config import Settings
from gateway.serve.server import RunningGateway
from gateway.tools.seed import SEED_PAYLOAD

from e2e_harness import base_config, fetch_token
from polling import until
from proc_harness import CapturedProcess, gateway_command
from spool_harness import (
    admin_metrics,
    backend_process,
    first_seen,
    free_port,
    recorded,
    spool_config,
)

pytestmark = pytest.mark.slow
Start = Callable[[Settings], Awaitable[RunningGateway]]
IRIS_SECONDS = 3.0


def fallback_config(cert_dir: Path, signing_keys: dict[str, Path], secret_hash: str,
                    tmp_path: Path, backend_url: str) -> dict[str, Any]:
    config = base_config(cert_dir, signing_keys, secret_hash, backend_url + "/segments/aam")
    config["routes"][0]["delivery"] = "fallback"
    config["state"] = {"path": str(tmp_path / "state.db")}
    config["spool"] = {"retry_initial_seconds": 0.05, "retry_max_seconds": 0.3}
    return config


async def push(session: aiohttp.ClientSession, port: int, token: str, request_id: str
               ) -> tuple[int, Any, float]:
    started = time.monotonic()
    async with session.post(f"https://localhost:{port}/segments/aam", data=SEED_PAYLOAD,
                            headers={"Authorization": f"Bearer {token}",
                                     "Content-Type": "application/json",
                                     "X-Request-Id": request_id}) as response:
        return response.status, await response.json(), time.monotonic() - started


async def control(session: aiohttp.ClientSession, url: str, **change: Any) -> None:
    async with session.post(url + "/_control", json=change) as response:
        assert response.status == 200


async def spooled(port: int) -> float:
    metrics = await admin_metrics(port)
    return metrics.get(("gateway_spool_accepted_total", (("route", "/segments/aam"),)), 0.0)


async def test_the_backends_own_answer_is_relayed_and_a_400_is_not_spooled(
        cert_dir: Path, signing_keys: dict[str, Path], secret_hash: str, tmp_path: Path,
        processes: list[CapturedProcess], write_config: Callable[[dict[str, Any]], Settings],
        start: Start, session: aiohttp.ClientSession) -> None:
    url, _ = await backend_process(processes)
    gateway = await start(write_config(fallback_config(cert_dir, signing_keys, secret_hash,
                                                       tmp_path, url)))
    port = gateway.ports["https"]
    token = await fetch_token(session, port)
    status, answer, _ = await push(session, port, token, "up-1")
    assert status == 200 and answer == {"received": True, "count": 1, "users": 1,
                                        "segments": 1}
    await control(session, url, status=400)
    status, answer, _ = await push(session, port, token, "refused-1")
    assert status == 400 and answer["received"] is False and answer["count"] == 2
    assert await spooled(gateway.ports["admin"]) == 0  # relayed, never stored


async def test_backend_down_answers_200_spooled_and_delivers_in_order_once_back(
        cert_dir: Path, signing_keys: dict[str, Path], secret_hash: str, tmp_path: Path,
        processes: list[CapturedProcess], write_config: Callable[[dict[str, Any]], Settings],
        start: Start, session: aiohttp.ClientSession) -> None:
    backend_port = free_port()  # nothing listens there yet
    gateway = await start(write_config(fallback_config(
        cert_dir, signing_keys, secret_hash, tmp_path, f"http://127.0.0.1:{backend_port}")))
    port, admin = gateway.ports["https"], gateway.ports["admin"]
    token = await fetch_token(session, port)
    sent = [f"down-{i}" for i in range(8)]
    for request_id in sent:
        status, answer, seconds = await push(session, port, token, request_id)
        assert status == 200 and answer["spooled"] is True and seconds < IRIS_SECONDS
    assert await spooled(admin) == len(sent)
    async with aiohttp.ClientSession() as plain, \
            plain.get(f"http://127.0.0.1:{admin}/readyz") as response:
        ready = await response.json()
    # As for a spool route: its backend away is reported, and the gateway stays ready.
    assert response.status == 200 and ready["spooling"] and ready["spool"]["depth"] >= 1
    record = tmp_path / "received.jsonl"
    await backend_process(processes, record, backend_port)
    received = await until(lambda: (lambda ids: ids if set(sent) <= set(ids) else None)(
        recorded(record)), 20.0)
    assert first_seen(received) == sent


async def test_a_backend_sleeping_5_s_gets_a_200_within_3_s_and_the_push_later(
        cert_dir: Path, signing_keys: dict[str, Path], secret_hash: str, tmp_path: Path,
        processes: list[CapturedProcess], write_config: Callable[[dict[str, Any]], Settings],
        start: Start, session: aiohttp.ClientSession) -> None:
    record = tmp_path / "received.jsonl"
    url, _ = await backend_process(processes, record)
    config = fallback_config(cert_dir, signing_keys, secret_hash, tmp_path, url)
    config["routes"][0]["timeout_seconds"] = 1  # the deliverer's tries, while it sleeps
    gateway = await start(write_config(config))
    port = gateway.ports["https"]
    token = await fetch_token(session, port)
    await control(session, url, delay=5)
    status, answer, seconds = await push(session, port, token, "sleepy-1")
    assert status == 200 and answer["spooled"] is True
    assert seconds < IRIS_SECONDS
    await control(session, url, delay=0)
    # The late original and the redelivery both reach the backend: at least once.
    await until(lambda: recorded(record).count("sleepy-1") >= 2, 20.0)
    metrics = await admin_metrics(gateway.ports["admin"])
    assert metrics[("gateway_fallback_spooled_total",
                    (("reason", "timeout"), ("route", "/segments/aam")))] == 1


async def test_kill_9_after_spooled_fallback_answers_loses_nothing(
        tmp_path: Path, cert_dir: Path, signing_keys: dict[str, Path], secret_hash: str,
        session: aiohttp.ClientSession, processes: list[CapturedProcess]) -> None:
    backend_port = free_port()  # down
    path = spool_config(tmp_path, cert_dir, signing_keys, secret_hash, backend_port)
    config = yaml.safe_load(path.read_text())
    config["routes"][0]["delivery"] = "fallback"
    path.write_text(yaml.safe_dump(config))
    gateway = gateway_command("serve", "-c", str(path))
    processes.append(gateway)
    port = (await gateway.serving())["https"]
    token = await fetch_token(session, port)
    sent = [f"kill-{i}" for i in range(6)]
    for request_id in sent:
        status, answer, seconds = await push(session, port, token, request_id)
        assert (status, answer["spooled"]) == (200, True) and seconds < IRIS_SECONDS
    gateway.kill()  # SIGKILL right after the last 200: no drain, no clean close

    again = gateway_command("serve", "-c", str(path))
    processes.append(again)
    await again.serving()
    record = tmp_path / "received.jsonl"
    await backend_process(processes, record, backend_port)
    received = await until(lambda: (lambda ids: ids if set(sent) <= set(ids) else None)(
        recorded(record)), 20.0, context=again.lines)
    assert first_seen(received) == sent
    assert all(json.loads(x)["body"].encode() == SEED_PAYLOAD
               for x in record.read_text().splitlines())
