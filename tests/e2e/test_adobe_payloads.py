"""Payload profiles through the real gateway (TLS on loopback) in front of the real sample
backend process (docs/configuration.md ``payload``): a push shaped like Adobe's IRIS sample
forwarded byte for byte by the faithful default and refused by the strict profile, a JSON
Schema route, and a report-mode route that forwards what it counts."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.config import Settings
from gateway.serve.server import RunningGateway
from gateway.tools.payloads import IRIS_SHAPED_PUSH

from e2e_harness import base_config, fetch_token
from proc_harness import CapturedProcess
from spool_harness import admin_metrics, backend_process

Start = Callable[[Settings], Awaitable[RunningGateway]]
SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "schemas" / "partner-example.json"
PARTNER_PUSH = (b'{"device": "51880347210963314271938566402175593301", "dpid": "20915",\n'
                b' "segments": [{"id": "7710342", "status": "1"}, {"id": 991, "status": 0}]}')


@pytest.fixture
async def routes(cert_dir: Path, signing_keys: dict[str, Path], secret_hash: str,
                 tmp_path: Path, processes: list[CapturedProcess],
                 write_config: Callable[[dict[str, Any]], Settings], start: Start,
                 ) -> tuple[RunningGateway, Path, str]:
    """The gateway with one route per profile, all to one backend process that records."""
    record = tmp_path / "received.jsonl"
    url, _ = await backend_process(processes, record)
    config = base_config(cert_dir, signing_keys, secret_hash, url + "/segments/aam")
    default = config["routes"][0]
    config["routes"] += [
        {**default, "path": "/strict", "payload": "aam-segments-strict"},
        {**default, "path": "/partner", "payload": {"schema": str(SCHEMA)}},
        {**default, "path": "/moving", "payload": "aam-segments-strict",
         "payload_mode": "report"},
    ]
    return await start(write_config(config)), record, url


def received(record: Path) -> list[dict[str, Any]]:
    if not record.exists():
        return []
    return [json.loads(line) for line in record.read_text().splitlines()]


async def post(session: aiohttp.ClientSession, gateway: RunningGateway, path: str,
               body: bytes) -> tuple[int, dict[str, Any]]:
    token = await fetch_token(session, gateway.ports["https"])
    async with session.post(f"https://localhost:{gateway.ports['https']}{path}", data=body,
                            headers={"Authorization": f"Bearer {token}",
                                     "Content-Type": "application/json"}) as response:
        return response.status, await response.json()


async def test_an_iris_shaped_push_is_forwarded_byte_for_byte_and_strict_refuses_it(
        routes: tuple[RunningGateway, Path, str], session: aiohttp.ClientSession) -> None:
    gateway, record, _ = routes
    assert b"User_DPID" not in IRIS_SHAPED_PUSH
    status, answer = await post(session, gateway, "/segments/aam", IRIS_SHAPED_PUSH)
    # The sample backend's own answer, relayed: it counted what the push held.
    assert status == 200 and answer["users"] == 2 and answer["segments"] == 2
    arrived = received(record)
    assert len(arrived) == 1 and arrived[0]["body"].encode() == IRIS_SHAPED_PUSH

    status, answer = await post(session, gateway, "/strict", IRIS_SHAPED_PUSH)
    assert (status, answer["error"]) == (400, "invalid_payload")
    assert answer["error_description"] == "User_DPID: is required"
    assert len(received(record)) == 1  # never reached the backend


async def test_a_schema_route_takes_its_format_and_names_the_path_of_a_violation(
        routes: tuple[RunningGateway, Path, str], session: aiohttp.ClientSession) -> None:
    gateway, record, _ = routes
    status, _ = await post(session, gateway, "/partner", PARTNER_PUSH)
    assert status == 200
    assert received(record)[-1]["body"].encode() == PARTNER_PUSH
    bad = PARTNER_PUSH.replace(b'"status": 0', b'"status": "secret-value-7"')
    status, answer = await post(session, gateway, "/partner", bad)
    assert (status, answer["error"]) == (400, "invalid_payload")
    assert answer["error_description"] == "segments[1].status: fails the schema's enum"
    assert "secret-value-7" not in json.dumps(answer)
    status, answer = await post(session, gateway, "/partner", b'{"device": "d"}')
    assert answer["error_description"] == "segments: is required"
    # Adobe's own format is not this route's.
    status, _ = await post(session, gateway, "/partner", IRIS_SHAPED_PUSH)
    assert status == 400
    assert len(received(record)) == 1


async def test_a_report_mode_route_forwards_an_invalid_push_and_counts_it(
        routes: tuple[RunningGateway, Path, str], session: aiohttp.ClientSession,
        caplog: pytest.LogCaptureFixture) -> None:
    gateway, record, _ = routes
    invalid = IRIS_SHAPED_PUSH.replace(b'"Status": "0"', b'"Status": "7"')
    status, _ = await post(session, gateway, "/moving", invalid)
    assert status == 200
    assert received(record)[-1]["body"].encode() == invalid
    metrics = await admin_metrics(gateway.ports["admin"])
    counted = {labels: value for (name, labels), value in metrics.items()
               if name == "gateway_payload_violations_total"}
    # The first problem msgspec meets: the Status, before the missing User_DPID.
    assert counted == {(("reason", "invalid_value"), ("route", "/moving")): 1.0}
    # The same push on an enforcing route: refused, and counted under its own route.
    status, _ = await post(session, gateway, "/strict", invalid)
    assert status == 400
    metrics = await admin_metrics(gateway.ports["admin"])
    assert metrics[("gateway_payload_violations_total",
                    (("reason", "invalid_value"), ("route", "/strict")))] == 1.0
    logged = [r for r in caplog.records if getattr(r, "reason_id", "") == "payload_violation"]
    assert len(logged) == 1 and "Users[1].Segments[0].Status" in logged[0].getMessage()
    assert "7" not in logged[0].getMessage()  # the path and the rule, never the value
