"""Hostile payloads (docs/security.md): a JSON ``-0`` where a sign is refused, and a small gzip
body that inflates to megabytes of ``"AAM_Regions":[{},{},...]``, which must cost the
gateway about its inflated size in memory, not the Python objects it would decode to."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from gateway.config.model import MAX_BODY_BYTES
from gateway.serve.server import RunningGateway
from gateway.stages.payload import PayloadViolation, validate_aam_segments_strict
from gateway.stages.payload.aam import check_sliced
from gateway.stages.payload.profiles import FAITHFUL, STRICT
from gateway.tools.payloads import IRIS_SHAPED_PUSH

from adv_harness import assert_error_body, backend_count, fetch_token
from proc_harness import CapturedProcess, gateway_command

Backend = tuple[str, Any]
ConfigFactory = Callable[..., dict[str, Any]]

SIGNED_FIELDS = [("User_DPID", "User_DPID"), ("User_count", "User_count"),
                 ("AAM_Destination_Id", "AAM_Destination_Id"),
                 ("AAM_Destination_ID", "AAM_Destination_ID"),
                 ("Status", "Users[1].Segments[0].Status")]


def with_minus_zero(field: str) -> bytes:
    value = json.loads(IRIS_SHAPED_PUSH)
    value["User_DPID"] = "20915"
    if field == "AAM_Destination_ID":
        del value["AAM_Destination_Id"]  # else the two spellings differ: another refusal
    (value["Users"][1]["Segments"][0] if field == "Status" else value)[field] = 0
    # json.dumps writes 0; the number -0 is what a JSON writer that keeps signs sends.
    text = json.dumps(value)
    key = f'"{field}": 0'
    assert text.count(key) == 1
    return text.replace(key, f'"{field}": -0').encode()


async def post(session: aiohttp.ClientSession, gateway: RunningGateway, token: str,
               body: bytes) -> tuple[int, dict[str, Any]]:
    async with session.post(f"https://localhost:{gateway.ports['https']}/segments/aam",
                            data=body, headers={"Authorization": f"Bearer {token}",
                                                "Content-Type": "application/json"}) as answer:
        return answer.status, await answer.json()


@pytest.mark.parametrize(("field", "path"), SIGNED_FIELDS)
async def test_minus_zero_is_refused_where_signs_are(
        adv_gateway: RunningGateway, token: str, session: aiohttp.ClientSession,
        backend: Backend, field: str, path: str) -> None:
    body = with_minus_zero(field)
    status, answer = await post(session, adv_gateway, token, body)
    assert status == 400 and assert_error_body((status, json.dumps(answer).encode()))
    assert answer["error_description"].startswith(f"{path}: must be ")
    assert await backend_count(backend[0]) == 0
    # The strict profile and the sliced check of large bodies refuse it as well.
    with pytest.raises(PayloadViolation):
        validate_aam_segments_strict(body)
    for profile in (FAITHFUL, STRICT):
        with pytest.raises(PayloadViolation):
            await check_sliced(profile, body)


async def test_minus_zero_where_no_sign_is_refused_passes(
        adv_gateway: RunningGateway, token: str, session: aiohttp.ClientSession,
        backend: Backend) -> None:
    value = json.loads(IRIS_SHAPED_PUSH)
    value["Users"][0]["DataPartner_UUID"] = "a1b2-0c3d"  # the bytes -0 inside a string
    value["Extra"] = 0
    value["Users"][0]["Segments"][0]["Segment_ID"] = 0  # free text or any integer
    text = json.dumps(value).replace('"Extra": 0', '"Extra": -0').replace(
        '"Segment_ID": 0', '"Segment_ID": -0')
    status, _ = await post(session, adv_gateway, token, text.encode())
    assert status == 200
    assert await backend_count(backend[0]) == 1


@pytest.fixture
async def processes() -> AsyncIterator[list[CapturedProcess]]:
    started: list[CapturedProcess] = []
    yield started
    for process in started:
        process.kill()


def _peak_rss_kib(pid: int) -> int:
    """The process's high-water mark of resident memory (VmHWM), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


AMPLIFIER = (b'{"Users": [{"AAM_UUID": "1", "Segments": [], "AAM_Regions": ['
             + b",".join([b"{}"] * (int(9.7 * 2**20) // 3)) + b"]}]}")


@pytest.mark.slow
async def test_a_gzip_body_of_empty_regions_costs_its_size_not_its_objects(
        tmp_path: Path, adv_config: ConfigFactory, session: aiohttp.ClientSession,
        processes: list[CapturedProcess]) -> None:
    compressed = gzip.compress(AMPLIFIER, 9)
    assert len(compressed) < 20_000 and len(AMPLIFIER) > 9 * 2**20
    backend = gateway_command("backend", "--port", "0")
    processes.append(backend)
    url = (await backend.line("backend listening")).rsplit(" ", 1)[1]
    config = adv_config(url + "/segments/aam")
    config["server"].pop("max_body_bytes")  # the default bound first
    config["state"] = {"path": str(tmp_path / "state.db")}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    gateway = gateway_command("serve", "-c", str(path))
    processes.append(gateway)
    port = (await gateway.serving())["https"]
    token = await fetch_token(session, port)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
               "Content-Encoding": "gzip"}
    address = f"https://localhost:{port}/segments/aam"
    async with session.post(address, data=compressed, headers=headers) as answer:
        assert answer.status == 413  # ten users a message never come near 1 MiB
    assert len(AMPLIFIER) > MAX_BODY_BYTES
    gateway.kill()

    # An operator who raised the bound: the body is checked, and costs about its size.
    config["server"]["max_body_bytes"] = 16 * 2**20
    path.write_text(yaml.safe_dump(config))
    gateway = gateway_command("serve", "-c", str(path))
    processes.append(gateway)
    port = (await gateway.serving())["https"]
    address = f"https://localhost:{port}/segments/aam"
    async with session.post(address, data=IRIS_SHAPED_PUSH,
                            headers={**headers, "Content-Encoding": "identity"}) as answer:
        assert answer.status == 200  # warmed up: imports, pools, the TLS session
    before = _peak_rss_kib(gateway.process.pid)
    async with session.post(address, data=compressed, headers=headers) as answer:
        assert answer.status == 200, await answer.text()  # a list of objects is a list
    await asyncio.sleep(0)
    grown_mib = (_peak_rss_kib(gateway.process.pid) - before) / 1024
    # The inflated body, its copy on the way to the backend and buffers: ~3x 9.7 MiB. A
    # decode to Python objects grew the process by ~230 MiB.
    print(f"peak RSS growth: {grown_mib:.1f} MiB")
    assert grown_mib < 80, grown_mib
