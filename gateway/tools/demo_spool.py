"""``gateway demo``, step 6: spool and fallback delivery (docs/operations.md) with the backend
stopped.

The demo's configuration has a second route, ``/segments/spooled``, with ``delivery: spool``,
stored in the local SQLite file (or, with ``gateway demo --spool-redis URL``, in Redis
Streams), and a third, ``/segments/fallback``, with ``delivery: fallback``. This step pushes
once to the fallback route while the backend runs (its own answer comes back), stops the
sample backend process, pushes a batch of Adobe's sample payload to both routes (each
answered ``200`` at once: stored durably first), shows ``/readyz``'s spool report, starts
the backend again on the same port and waits until every push has arrived, checking each
route's order from the ``X-Request-Id`` the backend recorded.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from rich.console import Console

from gateway.tools.seed import SEED_PAYLOAD

__all__ = ["FALLBACK_PATH", "SPOOL_PATH", "spool_section", "spool_walkthrough"]

SPOOL_PATH = "/segments/spooled"
FALLBACK_PATH = "/segments/fallback"
PUSHES = 20
FALLBACK_PUSHES = 5
_ARRIVAL_SECONDS = 15.0


def spool_section(demo_dir: Path, redis_url: str | None) -> dict[str, Any]:
    """The demo's ``spool`` section: the local file, or the streams at ``redis_url`` (under a
    prefix of their own, so the demo never touches anything else kept in that Redis; a
    few small keys stay there, reused by the next run)."""
    # Short backoff, so the demo sees the backend's return within a second.
    section: dict[str, Any] = {"path": str(demo_dir / "spool.db"),
                               "retry_initial_seconds": 0.2, "retry_max_seconds": 1.0}
    if redis_url is not None:
        section.update({"backend": "redis", "url": redis_url,
                        "key_prefix": "gateway-demo:"})
    return section


def _arrived(record: Path) -> list[str]:
    """The X-Request-Id of each push the restarted backend recorded, in arrival order."""
    if not record.exists():
        return []
    ids = []
    for line in record.read_text(encoding="utf-8").splitlines():
        if line.endswith("}"):
            headers = json.loads(line)["headers"]
            ids += [v for k, v in headers.items() if k.lower() == "x-request-id"]
    return ids


async def spool_walkthrough(console: Console, ports: dict[str, int], context: ssl.SSLContext,
                            basic: str, stop_backend: Callable[[], None],
                            start_backend: Callable[[Path], None], record: Path) -> bool:
    """Run step 6; False when a push was refused or did not arrive in time."""
    https = f"https://localhost:{ports['https']}"
    admin = f"http://127.0.0.1:{ports['admin']}"
    console.rule(f"6. Spool delivery: the backend stops, {SPOOL_PATH} and {FALLBACK_PATH} "
                 "keep answering 200")
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as client:
        async with client.post(https + "/oauth2/token", data="grant_type=client_credentials",
                               headers={"Authorization": f"Basic {basic}", "Content-Type":
                                        "application/x-www-form-urlencoded"}) as response:
            token = (await response.json())["access_token"]
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        async with client.post(https + FALLBACK_PATH, data=SEED_PAYLOAD,
                               headers=headers) as response:
            console.print(f"  backend up: POST {FALLBACK_PATH} → {response.status} "
                          f"{await response.text()} (the backend's own answer)")
        await asyncio.to_thread(stop_backend)
        console.print("  the sample backend process is stopped (its port refuses connections)")
        sent, slowest, statuses = [], 0.0, []
        for i in range(PUSHES):
            request_id = f"spool-demo-{i:02d}"
            started = time.perf_counter()
            async with client.post(https + SPOOL_PATH, data=SEED_PAYLOAD, headers={
                    "Authorization": f"Bearer {token}", "Content-Type": "application/json",
                    "X-Request-Id": request_id}) as response:
                await response.read()
                statuses.append(response.status)
            slowest = max(slowest, time.perf_counter() - started)
            sent.append(request_id)
        console.print(f"  {PUSHES} pushes to {SPOOL_PATH}: statuses {sorted(set(statuses))}, "
                      f"slowest answer {slowest * 1000:.1f} ms (IRIS allows 3,000)")
        fallback, answer = [], ""
        for i in range(FALLBACK_PUSHES):
            request_id = f"fallback-demo-{i:02d}"
            started = time.perf_counter()
            async with client.post(https + FALLBACK_PATH, data=SEED_PAYLOAD, headers={
                    **headers, "X-Request-Id": request_id}) as response:
                answer = await response.text()
                statuses.append(response.status)
            slowest = max(slowest, time.perf_counter() - started)
            fallback.append(request_id)
        console.print(f"  {FALLBACK_PUSHES} pushes to {FALLBACK_PATH}: the last answered "
                      f"{statuses[-1]} {answer}; slowest answer of all "
                      f"{slowest * 1000:.1f} ms")
        async with client.get(admin + "/readyz") as response:
            ready = await response.json()
        # Not ready: the demo's direct route shares this backend. A gateway whose only
        # route to it were spool routes would stay ready (the backend listed as spooling).
        console.print(f"  GET /readyz → {response.status} {ready.get('reasons', [])}")
        console.print(f"    spool: {json.dumps(ready.get('spool'))}")
    if set(statuses) != {200}:
        return False
    await asyncio.to_thread(start_backend, record)
    console.print("  the sample backend is started again on the same port")
    started = time.monotonic()
    while time.monotonic() - started < _ARRIVAL_SECONDS:
        arrived = _arrived(record)
        if set(sent) | set(fallback) <= set(arrived):
            break
        await asyncio.sleep(0.05)
    first_seen = [x for x in dict.fromkeys(arrived) if x in set(sent)]
    fallback_seen = [x for x in dict.fromkeys(arrived) if x in set(fallback)]
    in_order = first_seen == sent and fallback_seen == fallback
    console.print(f"  the backend received {len(first_seen)} of {PUSHES} spooled and "
                  f"{len(fallback_seen)} of {FALLBACK_PUSHES} fallback pushes "
                  f"{'each in arrival order' if in_order else 'NOT in order'}, "
                  f"{time.monotonic() - started:.1f} s after it came back (retries back off "
                  "exponentially, with jitter)")
    async with aiohttp.ClientSession() as plain, plain.get(admin + "/metrics") as response:
        text = await response.text()
    for line in text.splitlines():
        if line.startswith(("gateway_spool_accepted", "gateway_spool_delivered",
                            "gateway_spool_retries", "gateway_spool_depth")):
            console.print(f"  {line}", markup=False)
    return in_order and len(first_seen) == PUSHES and len(fallback_seen) == FALLBACK_PUSHES
