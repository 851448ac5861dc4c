"""W3C Trace Context through the real gateway and the real sample backend, as processes on
loopback (docs/operations.md#trace-context): the backend receives a ``traceparent`` and the
access log carries its trace id, for a direct forward and after a spool delivery, with the
caller's trace kept when valid and a new one made otherwise."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.tools.seed import SEED_PAYLOAD

from e2e_harness import fetch_token
from polling import until
from proc_harness import CapturedProcess, gateway_command
from spool_harness import direct_and_spool_config, free_port

pytestmark = pytest.mark.slow

CALLER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")


def _arrived(record: Path) -> dict[str, dict[str, str]]:
    """X-Request-Id -> the headers the backend received (lower-case names), last wins."""
    if not record.exists():
        return {}
    found = {}
    for line in record.read_text().splitlines():
        headers = {k.lower(): v for k, v in json.loads(line)["headers"].items()}
        found[headers["x-request-id"]] = headers
    return found


def _logged(gateway: CapturedProcess) -> dict[str, str]:
    """X-Request-Id -> the access log's trace_id."""
    return {r["request_id"]: r["trace_id"] for r in gateway.records()
            if r.get("logger") == "gateway.access"}


async def _push(session: aiohttp.ClientSession, port: int, token: str, path: str,
                request_id: str, **extra: str) -> None:
    async with session.post(f"https://localhost:{port}{path}", data=SEED_PAYLOAD, headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/json",
            "X-Request-Id": request_id, **extra}) as response:
        await response.read()
        assert response.status == 200


async def test_a_trace_id_reaches_the_backend_and_the_log_directly_and_through_the_spool(
        tmp_path: Path, cert_dir: Path, signing_keys: dict[str, Path], secret_hash: str,
        session: aiohttp.ClientSession, processes: list[CapturedProcess]) -> None:
    backend_port = free_port()
    record = tmp_path / "received.jsonl"
    config = direct_and_spool_config(tmp_path, cert_dir, signing_keys, secret_hash,
                                     backend_port)
    gateway = gateway_command("serve", "-c", str(config))
    processes.append(gateway)
    ports = await gateway.serving()
    token = await fetch_token(session, ports["https"])
    # The backend is down: the spool keeps these two, header block and trace included.
    await _push(session, ports["https"], token, "/segments/spooled", "spool-new")
    await _push(session, ports["https"], token, "/segments/spooled", "spool-caller",
                traceparent=CALLER, tracestate="rojo=00f067aa0ba902b7")
    backend = gateway_command("backend", "--port", str(backend_port), "--record", str(record))
    processes.append(backend)
    await backend.line("backend listening")
    await _push(session, ports["https"], token, "/segments/aam", "direct-new")
    await _push(session, ports["https"], token, "/segments/aam", "direct-caller",
                traceparent=CALLER, tracestate="rojo=00f067aa0ba902b7")
    await _push(session, ports["https"], token, "/segments/aam", "direct-invalid",
                traceparent=CALLER.replace("4bf9", "4BF9"), tracestate="rojo=1")
    names = {"spool-new", "spool-caller", "direct-new", "direct-caller", "direct-invalid"}
    arrived: dict[str, Any] = await until(
        lambda: (lambda seen: seen if names <= set(seen) else None)(_arrived(record)), 20.0,
        context=gateway.lines)
    logged: dict[str, str] = await gateway.wait_for(
        lambda: (lambda seen: seen if names <= set(seen) else None)(_logged(gateway)))
    for name in names:
        found = _TRACEPARENT.fullmatch(arrived[name]["traceparent"])
        assert found, (name, arrived[name]["traceparent"])
        assert logged[name] == found[1], name  # the log names the trace the backend got
    for name in ("spool-caller", "direct-caller"):  # the caller's trace, kept
        assert arrived[name]["traceparent"] == CALLER
        assert arrived[name]["tracestate"] == "rojo=00f067aa0ba902b7"
    for name in ("spool-new", "direct-new", "direct-invalid"):  # a new trace each
        assert logged[name] != CALLER.split("-")[1]
        assert arrived[name]["traceparent"].endswith("-00")
        assert "tracestate" not in arrived[name]
    assert len({logged[n] for n in ("spool-new", "direct-new", "direct-invalid")}) == 3
