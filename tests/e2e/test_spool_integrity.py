"""The spool's guarantee under what production does to it: metrics scrapes, readiness
probes and the ``gateway spool`` commands while the gateway runs.

Reading ``/metrics`` used to open and close a descriptor of the spool file inside the
gateway, which on POSIX drops every lock the process's SQLite connections hold on it; a
``gateway spool retry`` then wrote at the same time as the gateway and an item was lost.
These tests run the real gateway, backend and commands as processes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from e2e_harness import fetch_token
from polling import until
from proc_harness import CapturedProcess, gateway_command
from spool_harness import free_port, push, spool_config

pytestmark = pytest.mark.slow


def spool_command(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", "spool", *args, "-c", str(config)],
                          capture_output=True, text=True, timeout=30, check=False)


async def backend_stats(plain: aiohttp.ClientSession, port: int) -> dict[str, Any]:
    async with plain.get(f"http://127.0.0.1:{port}/_stats") as response:
        result: dict[str, Any] = await response.json()
        return result


async def backend_control(plain: aiohttp.ClientSession, port: int, **change: Any) -> None:
    async with plain.post(f"http://127.0.0.1:{port}/_control", json=change) as response:
        assert response.status == 200


async def admin_get(plain: aiohttp.ClientSession, port: int, path: str) -> tuple[int, str]:
    async with plain.get(f"http://127.0.0.1:{port}{path}") as response:
        return response.status, await response.text()


def dead_ids(config: Path) -> list[int]:
    listing = spool_command(config, "list", "--dead", "--json")
    assert listing.returncode == 0, listing.stderr
    return [int(json.loads(line)["id"]) for line in listing.stdout.splitlines() if line]


async def test_retry_between_metrics_scrapes_delivers_every_dead_letter(
        tmp_path: Path, cert_dir: Path, signing_keys: dict[str, Path], secret_hash: str,
        session: aiohttp.ClientSession, processes: list[CapturedProcess]) -> None:
    """The reproduction: two dead letters, the backend back to 200, then /metrics, retry 1,
    /metrics, retry 2. Both are delivered, the spool stays writable, the gauges stay."""
    backend = gateway_command("backend", "--port", "0", "--status", "400")
    processes.append(backend)
    backend_port = int((await backend.line("backend listening")).rsplit(":", 1)[1])
    config = spool_config(tmp_path, cert_dir, signing_keys, secret_hash, backend_port)
    gateway = gateway_command("serve", "-c", str(config))
    processes.append(gateway)
    ports = await gateway.serving()
    token = await fetch_token(session, ports["https"])
    for i in range(2):
        assert await push(session, ports["https"], token, f"dead-{i}") == 200
    await until(lambda: len(dead_ids(config)) == 2, 15.0, context=gateway.lines)
    first, second = dead_ids(config)

    async with aiohttp.ClientSession() as plain:
        await backend_control(plain, backend_port, status=200, reset=True)
        status, _ = await admin_get(plain, ports["admin"], "/metrics")
        assert status == 200
        retried = spool_command(config, "retry", str(first))
        assert retried.returncode == 0, retried.stderr

        async def delivered(count: int) -> bool:
            return int((await backend_stats(plain, backend_port))["requests"]) >= count

        await until(lambda: delivered(1), 15, "the first retried item delivered",
                    interval=0.05, context=gateway.lines)
        status, metrics = await admin_get(plain, ports["admin"], "/metrics")
        assert status == 200 and "gateway_spool_depth" in metrics
        retried = spool_command(config, "retry", str(second))
        assert retried.returncode == 0, retried.stderr
        await until(lambda: delivered(2), 15, "the second retried item delivered",
                    interval=0.05, context=gateway.lines)

        status, ready = await admin_get(plain, ports["admin"], "/readyz")
        assert status == 200, ready
        status, metrics = await admin_get(plain, ports["admin"], "/metrics")
        assert 'gateway_spool_depth{route="/segments/aam"} 0.0' in metrics, metrics
        assert 'gateway_spool_dead_letters{route="/segments/aam"} 0.0' in metrics
    assert dead_ids(config) == []
    listing = spool_command(config, "list", "--json")
    assert listing.stdout.strip() == "", "a delivered item is still listed"
    gateway.kill()
    assert _integrity(tmp_path / "spool.db") == "ok"


def _integrity(path: Path) -> str:
    db = sqlite3.connect(path)
    try:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        db.close()


def _request_ids(path: Path, where: str) -> dict[str, str]:
    """X-Request-Id → last error of the spool's items matching ``where``, read from the file
    by this (separate) process."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        rows = db.execute(f"SELECT fields, coalesce(last_error, '') FROM items WHERE {where}"  # noqa: S608
                          ).fetchall()
    finally:
        db.close()
    found: dict[str, str] = {}
    for fields, error in rows:
        for line in bytes(fields).decode("latin-1").split("\r\n"):
            if line.lower().startswith("x-request-id:"):
                found[line.split(":", 1)[1].strip()] = str(error)
    return found


def _accepted(record: Path) -> dict[str, int]:
    """X-Request-Id → how many times the backend answered it 2xx."""
    counts: dict[str, int] = {}
    if not record.exists():
        return counts
    for line in record.read_text().splitlines():
        if not line.endswith("}"):
            continue
        entry = json.loads(line)
        if 200 <= int(entry.get("status", 0)) < 300:
            rid = next((v for k, v in entry["headers"].items() if k.lower() == "x-request-id"),
                       "")
            counts[rid] = counts.get(rid, 0) + 1
    return counts


async def test_stress_scrapes_commands_and_kills_lose_nothing(
        tmp_path: Path, cert_dir: Path, signing_keys: dict[str, Path], secret_hash: str,
        client_ssl_ctx: Any, processes: list[CapturedProcess]) -> None:
    """Two workers, a backend cycling through down, 500, 200 and 400, steady pushes,
    /metrics and /readyz at 20 Hz, ``gateway spool`` commands every second, a worker
    killed, then the whole gateway killed and restarted. Nothing answered 200 is lost."""
    record = tmp_path / "received.jsonl"
    backend_port = free_port()

    def start_backend() -> CapturedProcess:
        started = gateway_command("backend", "--port", str(backend_port), "--record",
                                  str(record))
        processes.append(started)
        return started

    backend: CapturedProcess | None = start_backend()
    assert backend is not None
    await backend.line("backend listening")
    config = spool_config(tmp_path, cert_dir, signing_keys, secret_hash, backend_port,
                          workers=2)
    gateway = gateway_command("serve", "-c", str(config))
    processes.append(gateway)
    ports = await gateway.serving()
    spool_db, state_db = tmp_path / "spool.db", tmp_path / "state.db"
    answered: list[str] = []   # pushes answered 200
    purged: set[str] = set()   # pushes this test asked to purge
    stop = asyncio.Event()
    problems: list[str] = []

    connector = aiohttp.TCPConnector(ssl=client_ssl_ctx, force_close=True)  # both workers
    async with aiohttp.ClientSession(connector=connector) as session, \
            aiohttp.ClientSession() as plain:
        token = await fetch_token(session, ports["https"])

        async def pushing() -> None:
            i = 0
            while not stop.is_set():
                rid = f"s-{i:05d}"
                i += 1
                try:
                    if await push(session, ports["https"], token, rid) == 200:
                        answered.append(rid)
                except (aiohttp.ClientError, OSError):
                    pass  # the gateway is down: never answered, so IRIS would retry
                await asyncio.sleep(0.05)

        async def scraping() -> None:
            while not stop.is_set():
                for path in ("/metrics", "/readyz"):
                    try:
                        status, text = await admin_get(plain, ports["admin"], path)
                    except (aiohttp.ClientError, OSError):
                        continue  # the gateway is down
                    if "cannot write" in text or (status >= 500 and path == "/metrics"):
                        problems.append(f"{path} {status}: {text[:200]}")
                await asyncio.sleep(0.05)

        async def operating() -> None:
            turn = 0
            while not stop.is_set():
                turn += 1
                for action in (("stats",), ("list", "--dead")):
                    done = await asyncio.to_thread(spool_command, config, *action)
                    if done.returncode not in (0, 1) or "Error" in done.stderr:
                        problems.append(f"spool {action[0]}: {done.stderr.strip()}")
                if turn % 3 == 0 and spool_db.exists():
                    dead = await asyncio.to_thread(_request_ids, spool_db, "dead = 1")
                    if dead:  # purge one dead letter, known by its request id
                        victim = sorted(dead)[0]
                        ids = await asyncio.to_thread(dead_ids, config)
                        item = await asyncio.to_thread(_item_of, spool_db, victim)
                        if item in ids:
                            gone = await asyncio.to_thread(spool_command, config, "purge",
                                                           str(item))
                            if gone.returncode == 0:
                                purged.add(victim)
                elif turn % 3 == 1:
                    await asyncio.to_thread(spool_command, config, "retry", "--all-dead")
                await asyncio.sleep(1.0)

        async def backend_cycle() -> None:
            nonlocal backend
            phases: list[int | None] = [500, 200, None, 200, 400, 200]
            for n in range(100):
                if stop.is_set():
                    return
                phase = phases[n % len(phases)]
                if phase is None and backend is not None:
                    backend.kill()
                    backend = None
                else:
                    if backend is None:
                        backend = start_backend()
                        await backend.line("backend listening")
                    await backend_control(plain, backend_port, status=phase)
                await asyncio.sleep(1.5)

        tasks = [asyncio.get_running_loop().create_task(job()) for job in
                 (pushing, scraping, operating, backend_cycle)]
        await asyncio.sleep(6)
        worker = next(r["pid"] for r in gateway.records()
                      if r.get("request_id", "").startswith("s-") and r.get("pid")
                      and r["pid"] != gateway.process.pid)
        os.kill(worker, signal.SIGKILL)  # one worker: the supervisor starts another
        await asyncio.sleep(6)
        gateway.kill()  # the whole gateway, mid-traffic
        again = gateway_command("serve", "-c", str(config))
        processes.append(again)
        ports.update(await again.serving())  # same ports: the config fixes them
        await asyncio.sleep(6)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)

        # Drain: the backend healthy, every remaining dead letter retried once.
        if backend is None:
            backend = start_backend()
            await backend.line("backend listening")
        await backend_control(plain, backend_port, status=200)
        await asyncio.to_thread(spool_command, config, "retry", "--all-dead")
        answers: list[str] = []

        async def drained() -> bool:
            status, text = await admin_get(plain, ports["admin"], "/readyz")
            answers.append(text)
            return status == 200 and json.loads(text)["spool"]["depth"] == 0

        await until(drained, 20, "/readyz showing the spool drained", interval=0.1,
                    context=answers)
        again.kill()

    assert not problems, problems[:5]
    assert _integrity(spool_db) == "ok" and _integrity(state_db) == "ok"
    accepted = _accepted(record)
    dead = _request_ids(spool_db, "dead = 1")
    assert all(dead[rid] for rid in dead), "a dead letter without its reason"
    missing = [rid for rid in answered if rid not in accepted and rid not in dead]
    # Only what this test purged may be neither delivered nor a dead letter.
    assert set(missing) <= purged, sorted(set(missing) - purged)[:10]
    assert len(answered) > 100
    duplicates = sum(count - 1 for count in accepted.values() if count > 1)
    print(f"stress: {len(answered)} answered 200, {len(accepted)} delivered, "
          f"{duplicates} duplicate deliveries, {len(dead)} dead letters, {len(purged)} purged")


def _item_of(path: Path, request_id: str) -> int | None:
    """The spool id of the item carrying ``request_id``."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        for item, fields in db.execute("SELECT id, fields FROM items"):
            if f"X-Request-Id: {request_id}\r\n".encode() in bytes(fields):
                return int(item)
    finally:
        db.close()
    return None
