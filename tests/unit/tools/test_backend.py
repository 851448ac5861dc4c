"""gateway/tools/backend.py: the sample legacy backend's counters, record file and controls."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from aiohttp.web import Application, Request
from pytest_aiohttp import AiohttpClient

from gateway.tools.backend import create_backend_app

SEED_BODY = (b'{"User_DPID": "12345", "Users": [{"AAM_UUID": "1", "Segments": []},'
             b' {"AAM_UUID": "2", "Segments": [{"Segment_ID": "7", "Status": "1"},'
             b' {"Segment_ID": 8, "Status": 0}]}]}')


async def backend(aiohttp_client: AiohttpClient, **options: object) -> TestClient[Request,
                                                                                   Application]:
    return await aiohttp_client(create_backend_app(**options))  # type: ignore[arg-type]


async def test_pushes_on_any_path_are_counted(aiohttp_client: AiohttpClient) -> None:
    client = await backend(aiohttp_client)
    first = await client.post("/segments/aam", data=SEED_BODY,
                              headers={"X-Gateway-Client-Id": "aam"})
    assert first.status == 200
    # The answer says what this push held, not only how many pushes came.
    assert await first.json() == {"received": True, "count": 1, "users": 2, "segments": 2}
    second = await client.get("/any/where?x=1", data=b"{}")
    assert await second.json() == {"received": True, "count": 2, "users": 0, "segments": 0}
    await client.put("/third", data=b"")

    stats = await (await client.get("/_stats")).json()
    assert stats["requests"] == 3
    assert stats["bytes"] == len(SEED_BODY) + 2
    assert stats["users"] == 2
    assert stats["segments"] == 2
    assert stats["last"]["method"] == "PUT"
    assert stats["last"]["path"] == "/third"

    await client.post("/segments/aam", data=SEED_BODY, headers={"X-Gateway-Client-Id": "aam"})
    last = (await (await client.get("/_stats")).json())["last"]
    assert last["headers"]["X-Gateway-Client-Id"] == "aam"
    assert last["body_bytes"] == len(SEED_BODY)


async def test_status_and_delay_from_options_and_control(aiohttp_client: AiohttpClient) -> None:
    client = await backend(aiohttp_client, status=503)
    failing = await client.post("/segments/aam", data=SEED_BODY)
    assert failing.status == 503
    assert (await failing.json())["received"] is False

    changed = await client.post("/_control", json={"status": 204, "delay": 0.01})
    assert await changed.json() == {"status": 204, "delay": 0.01}
    empty = await client.post("/segments/aam", data=SEED_BODY)
    assert empty.status == 204
    assert await empty.read() == b""

    await client.post("/_control", json={"status": 200, "delay": 0, "reset": True})
    stats = await (await client.get("/_stats")).json()
    assert (stats["requests"], stats["users"], stats["last"]) == (0, 0, None)
    assert (await client.post("/segments/aam", data=b"{}")).status == 200


@pytest.mark.parametrize("change", [
    {"status": 42}, {"status": "500"}, {"delay": -1}, {"delay": True}, {"colour": "red"}, [],
])
async def test_control_refuses_nonsense(aiohttp_client: AiohttpClient, change: object) -> None:
    client = await backend(aiohttp_client)
    response = await client.post("/_control", json=change)
    assert response.status == 400
    assert (await (await client.get("/_stats")).json())["status"] == 200


async def test_record_file_holds_one_json_line_per_push(
        aiohttp_client: AiohttpClient, tmp_path: Path) -> None:
    record = tmp_path / "pushes.jsonl"
    client = await backend(aiohttp_client, record=record)
    await client.post("/segments/aam?batch=1", data=SEED_BODY,
                      headers={"Content-Type": "application/json"})
    await client.get("/other", data=b"\xff")
    await client.get("/_stats")  # the tool's own paths are not pushes
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    assert [(e["method"], e["path"], e["query"]) for e in lines] == [
        ("POST", "/segments/aam", "batch=1"), ("GET", "/other", "")]
    assert lines[0]["body"] == SEED_BODY.decode()
    assert lines[0]["headers"]["Content-Type"] == "application/json"
    assert lines[1]["body"] == "\ufffd"


def test_bad_options_are_refused_at_creation() -> None:
    with pytest.raises(ValueError, match="status"):
        create_backend_app(status=700)


@pytest.mark.slow
async def test_run_backend_prints_its_address_and_stops_on_sigterm(tmp_path: Path) -> None:
    code = ("from gateway.tools.backend import run_backend; "
            "raise SystemExit(run_backend('127.0.0.1', 0, 200, 0.0, None))")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, cwd=Path(__file__).resolve().parents[3])
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
    assert line.startswith("backend listening on http://127.0.0.1:")
    process.send_signal(signal.SIGTERM)
    await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 0


async def test_stats_count_pushes_in_flight_at_once(aiohttp_client: AiohttpClient) -> None:
    client = await backend(aiohttp_client)
    await client.post("/_control", json={"delay": 0.2})
    pushes = [asyncio.ensure_future(client.post("/segments/aam", data=SEED_BODY))
              for _ in range(3)]
    async with asyncio.timeout(10):
        while (await (await client.get("/_stats")).json())["in_flight"] < 3:
            await asyncio.sleep(0.01)
        for answer in await asyncio.gather(*pushes):
            assert answer.status == 200
    stats = await (await client.get("/_stats")).json()
    assert (stats["in_flight"], stats["max_in_flight"]) == (0, 3)
    await client.post("/_control", json={"reset": True})
    assert (await (await client.get("/_stats")).json())["max_in_flight"] == 0
