"""What a status means for a spooled push while Redis fails (docs/deploy.md section 6): real
``redis-server``s, real Sentinels (``sentinel_harness.py``), ``gateway serve`` processes and
the sample backend recording every delivery, under a steady load.

* Sentinel failover: the primary is killed (SIGKILL) under load through two gateways; no
  gateway is restarted; every push answered 200 is delivered once, and deliveries resume
  within 15 s of the promotion.
* ``min_replicas: 1`` and the only replica killed, then back: every push is answered 200
  within 3 s, each delivered once, and nothing answered otherwise is ever delivered.
* Redis stalled (SIGSTOP) for 8 s: ``/readyz`` answers within 1 s throughout; nothing is
  lost, nothing delivered twice.
* The local file moved into a Redis without its replicas: nothing moves until they are
  back, then each item is delivered once.

Deliveries are counted per ``Idempotency-Key`` and per ``X-Request-Id``. Every wait is
bounded by a deadline, and every process started here is killed at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as redis
import yaml

from e2e_harness import fetch_token
from polling import until
from proc_harness import CapturedProcess, gateway_command
from redis_harness import RedisServer, needs_redis
from sentinel_harness import MASTER, SentinelFleet
from spool_harness import free_port, push, redis_spool_config

pytestmark = [needs_redis, pytest.mark.slow]

Keys = dict[str, Path]
RATE_SECONDS = 0.1  # per gateway: two gateways make IRIS's 20 pushes/s


@dataclass
class Load:
    """Pushes sent at a steady rate until ``stop``: (request id, status, seconds) each."""

    answers: list[tuple[str, int, float]] = field(default_factory=list)
    stopped: asyncio.Event = field(default_factory=asyncio.Event)

    def ok(self) -> list[str]:
        return [rid for rid, status, _ in self.answers if status == 200]

    def refused(self) -> list[str]:
        return [rid for rid, status, _ in self.answers if status != 200]


async def _pusher(load: Load, session: aiohttp.ClientSession, port: int, token: str,
                  prefix: str) -> None:
    async def one(rid: str) -> None:
        started = time.monotonic()
        try:
            status = await push(session, port, token, rid)
        except aiohttp.ClientError:
            status = 0
        load.answers.append((rid, status, time.monotonic() - started))

    sends: list[asyncio.Task[None]] = []
    i = 0
    while not load.stopped.is_set():
        sends.append(asyncio.get_running_loop().create_task(one(f"{prefix}-{i:04d}")))
        i += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(load.stopped.wait(), RATE_SECONDS)
    await asyncio.gather(*sends)


def deliveries(record: Path) -> tuple[Counter[str], Counter[str]]:
    """(deliveries per X-Request-Id, per Idempotency-Key) as the backend recorded them."""
    by_id: Counter[str] = Counter()
    by_key: Counter[str] = Counter()
    if not record.exists():
        return by_id, by_key
    for line in record.read_text().splitlines():
        if not line.endswith("}"):
            continue
        headers = {k.lower(): v for k, v in json.loads(line)["headers"].items()}
        by_id[headers.get("x-request-id", "")] += 1
        by_key[headers.get("idempotency-key", "")] += 1
    return by_id, by_key


async def _all_delivered(record: Path, wanted: list[str], seconds: float,
                         context: list[str]) -> None:
    await until(lambda: set(wanted) <= set(deliveries(record)[0]), seconds,
                f"all {len(wanted)} pushes answered 200 delivered", context=context)


def _check_once(record: Path, load: Load) -> Counter[str]:
    by_id, by_key = deliveries(record)
    twice = {rid: n for rid, n in by_id.items() if n > 1}
    assert not twice, f"delivered more than once: {twice}"
    assert "" not in by_key and all(n == 1 for n in by_key.values()), by_key.most_common(3)
    assert set(by_id) <= set(load.ok()), "a push not answered 200 was delivered"
    return by_id


async def _linked(replica: RedisServer) -> None:
    """Until ``replica`` is in sync with its primary."""
    client = redis.Redis(port=replica.port)
    try:
        async def up() -> bool:
            return (await client.info("replication")).get("master_link_status") == "up"
        await until(up, 15.0, "the replica in sync with the primary")
    finally:
        await client.aclose()


async def _serve(processes: list[CapturedProcess], config: Path) -> dict[str, int]:
    gateway = gateway_command("serve", "-c", str(config))
    processes.append(gateway)
    return await gateway.serving()


async def _backend(processes: list[CapturedProcess], port: int, record: Path) -> None:
    backend = gateway_command("backend", "--port", str(port), "--record", str(record))
    processes.append(backend)
    await backend.line("backend listening")


async def _readyz(port: int) -> tuple[float, dict[str, Any]]:
    started = time.monotonic()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as plain, \
            plain.get(f"http://127.0.0.1:{port}/readyz") as response:
        body = await response.json()
    return time.monotonic() - started, body


def _config(directory: Path, keys: tuple[Path, Keys, str], backend_port: int,
            url: str | None, sentinel: dict[str, Any] | None = None, **spool: Any) -> Path:
    """A spool route on Redis at ``url``; or, with ``sentinel``, the state on Redis through
    those Sentinels and the spool with neither ``url`` nor ``sentinel``: the state's."""
    cert_dir, signing_keys, secret_hash = keys
    path = redis_spool_config(directory, cert_dir, signing_keys, secret_hash, backend_port,
                              url or "redis://unused", **spool)
    if sentinel is not None:
        config = yaml.safe_load(path.read_text())
        del config["spool"]["url"]
        config["state"].update({"backend": "redis", "sentinel": sentinel})
        path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def keys(cert_dir: Path, signing_keys: Keys, secret_hash: str) -> tuple[Path, Keys, str]:
    return cert_dir, signing_keys, secret_hash


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[SentinelFleet]:
    started = await asyncio.to_thread(SentinelFleet, tmp_path / "redis", 2)
    yield started
    started.stop()


async def test_a_sentinel_failover_under_load_loses_and_duplicates_nothing(
        tmp_path: Path, fleet: SentinelFleet, keys: tuple[Path, Keys, str],
        session: aiohttp.ClientSession, processes: list[CapturedProcess]) -> None:
    record, backend_port = tmp_path / "received.jsonl", free_port()
    await _backend(processes, backend_port, record)
    sentinel = {"master_name": MASTER, "nodes": fleet.nodes}
    ports = [await _serve(processes, _config(tmp_path / name, keys, backend_port, None,
                                             sentinel=sentinel, min_replicas=1))
             for name in ("a", "b")]
    tokens = [await fetch_token(session, p["https"]) for p in ports]
    load = Load()
    pushers = [asyncio.get_running_loop().create_task(
        _pusher(load, session, p["https"], t, name))
        for p, t, name in zip(ports, tokens, ("a", "b"), strict=True)]
    await until(lambda: len(deliveries(record)[0]) >= 40, 20.0, "40 deliveries before")
    old = fleet.primary.port
    fleet.primary.stop()  # SIGKILL under load
    killed_at = time.monotonic()
    await until(lambda: (fleet.master_port() or old) != old, 30.0, "a replica promoted")
    promoted_at = time.monotonic()
    before = len(deliveries(record)[0])
    await until(lambda: len(deliveries(record)[0]) > before, 15.0,
                "deliveries resumed after the promotion")
    resumed = time.monotonic() - promoted_at
    await until(lambda: time.monotonic() - promoted_at > 6, 10.0, "load after promotion")
    load.stopped.set()
    await asyncio.gather(*pushers)
    assert load.refused() == [], load.refused()[:5]
    await _all_delivered(record, load.ok(), 40.0, processes[1].lines)
    received = _check_once(record, load)
    _, ready = await _readyz(ports[0]["admin"])  # a fresh check: the page shows it too
    primary = f"127.0.0.1:{fleet.master_port()}"
    assert ready["spool"]["primary"] == primary, ready
    async with aiohttp.ClientSession() as plain, \
            plain.get(f"http://127.0.0.1:{ports[0]['admin']}/status.json") as response:
        page = await response.json()
    assert f"primary {primary}" in page["spool"]["store"], page["spool"]
    skipped = 0.0
    for p in ports:  # entries whose acknowledgement died with the primary: not sent again
        async with aiohttp.ClientSession() as plain, \
                plain.get(f"http://127.0.0.1:{p['admin']}/metrics") as response:
            skipped += sum(float(line.rsplit(" ", 1)[1]) for line in
                           (await response.text()).splitlines()
                           if line.startswith("gateway_spool_redelivery_skipped_total{"))
    for gateway in processes[1:]:  # each change logged once per gateway, the last one now
        changes = [r["message"].rsplit("new=", 1)[1] for r in
                   gateway.reason("redis_primary_changed")]
        assert changes and changes[-1] == repr(primary), changes
        assert len(changes) == len(set(changes)), changes  # a Sentinel may promote twice
    print(f"failover: {len(load.ok())} answered 200, {len(load.refused())} other, "
          f"{sum(received.values())} delivered, promoted {promoted_at - killed_at:.1f} s "
          f"after the kill, deliveries resumed {resumed:.1f} s after the promotion, "
          f"{skipped:.0f} redelivery(ies) skipped")


async def test_the_only_replica_lost_and_back_costs_no_push_a_non_200(
        tmp_path: Path, keys: tuple[Path, Keys, str], session: aiohttp.ClientSession,
        processes: list[CapturedProcess]) -> None:
    primary = RedisServer(tmp_path / "primary")
    replica = RedisServer(tmp_path / "replica", "--replicaof", "127.0.0.1", str(primary.port))
    try:
        await _linked(replica)
        record, backend_port = tmp_path / "received.jsonl", free_port()
        await _backend(processes, backend_port, record)
        ports = await _serve(processes, _config(tmp_path / "gw", keys, backend_port,
                                                primary.url, min_replicas=1))
        token = await fetch_token(session, ports["https"])
        load = Load()
        pusher = asyncio.get_running_loop().create_task(
            _pusher(load, session, ports["https"], token, "r"))
        await until(lambda: len(deliveries(record)[0]) >= 20, 20.0, "20 deliveries")
        replica.stop()  # SIGKILL: the only replica
        lost = len(load.answers)
        await until(lambda: len(load.answers) >= lost + 40, 20.0, "40 pushes without it")
        assert load.refused() == [], f"answered other than 200: {load.refused()[:5]}"
        _, ready = await _readyz(ports["admin"])
        assert ready["status"] == "degraded" and ready["spool"]["local"]["depth"] > 0, ready
        replica.start()  # back, empty: it syncs again
        back_at, back = time.monotonic(), len(load.answers)
        await until(lambda: len(load.answers) >= back + 30, 20.0, "30 pushes with it back")
        load.stopped.set()
        await pusher
        slow = [(rid, s, round(t, 2)) for rid, s, t in load.answers if s != 200 or t >= 3.0]
        assert slow == [], slow[:5]
        await _all_delivered(record, load.ok(), 30.0, processes[1].lines)
        received = _check_once(record, load)

        async def drained() -> bool:
            _, body = await _readyz(ports["admin"])
            return body["status"] == "ready" and body["spool"]["local"]["depth"] == 0
        await until(drained, 10.0, "the local file moved and /readyz ready again")
        print(f"replica lost: {len(load.ok())} answered 200, {len(load.refused())} other, "
              f"{sum(received.values())} delivered, all delivered and the file empty "
              f"{time.monotonic() - back_at:.1f} s after the replica restarted")
    finally:
        replica.stop()
        primary.stop()


async def test_a_stalled_redis_keeps_readyz_answering_and_duplicates_nothing(
        tmp_path: Path, keys: tuple[Path, Keys, str], session: aiohttp.ClientSession,
        processes: list[CapturedProcess]) -> None:
    server = RedisServer(tmp_path / "redis")
    try:
        record, backend_port = tmp_path / "received.jsonl", free_port()
        await _backend(processes, backend_port, record)
        ports = [await _serve(processes, _config(tmp_path / name, keys, backend_port,
                                                 server.url)) for name in ("a", "b")]
        tokens = [await fetch_token(session, p["https"]) for p in ports]
        load = Load()
        pushers = [asyncio.get_running_loop().create_task(
            _pusher(load, session, p["https"], t, name))
            for p, t, name in zip(ports, tokens, ("a", "b"), strict=True)]
        waits: list[float] = []

        async def probing() -> None:
            while not load.stopped.is_set():
                for p in ports:
                    waits.append((await _readyz(p["admin"]))[0])
                await asyncio.sleep(0.2)  # the probe's pace, not a timing assertion

        prober = asyncio.get_running_loop().create_task(probing())
        await until(lambda: len(deliveries(record)[0]) >= 30, 20.0, "30 deliveries")
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGSTOP)
        stalled_at = time.monotonic()
        await until(lambda: time.monotonic() - stalled_at >= 8, 12.0, "an 8 s stall")
        os.kill(server.process.pid, signal.SIGCONT)
        continued_at, resumed = time.monotonic(), len(load.answers)
        await until(lambda: len(load.answers) >= resumed + 40, 20.0, "40 pushes after")
        load.stopped.set()
        await asyncio.gather(*pushers, prober)
        assert load.refused() == [], load.refused()[:5]
        assert max(waits) < 1.0, f"/readyz took {max(waits):.2f} s"
        await _all_delivered(record, load.ok(), 40.0, processes[1].lines)
        caught_up = time.monotonic() - continued_at
        received = _check_once(record, load)
        print(f"stall: every push delivered {caught_up:.1f} s after SIGCONT (load included), "
              f"{len(load.ok())} answered 200, {len(load.refused())} other, "
              f"{sum(received.values())} delivered, /readyz at most {max(waits):.2f} s "
              f"over {len(waits)} probes")
    finally:
        if server.process is not None and server.process.poll() is None:
            os.kill(server.process.pid, signal.SIGCONT)
        server.stop()


async def test_the_local_file_waits_for_the_replicas_then_moves_each_item_once(
        tmp_path: Path, keys: tuple[Path, Keys, str], session: aiohttp.ClientSession,
        processes: list[CapturedProcess]) -> None:
    primary = RedisServer(tmp_path / "primary")
    replica = RedisServer(tmp_path / "replica", "--replicaof", "127.0.0.1", str(primary.port))
    try:
        await _linked(replica)
        record, backend_port = tmp_path / "received.jsonl", free_port()
        await _backend(processes, backend_port, record)
        # A takes the pushes into its local file; B, idle, delivers whatever is queued.
        a, _ = [await _serve(processes, _config(tmp_path / name, keys, backend_port,
                                                primary.url, min_replicas=1))
                for name in ("a", "b")]
        token = await fetch_token(session, a["https"])
        replica.stop()
        primary.stop()  # both gone: pushes go to the local file
        load = Load()
        for i in range(10):
            status = await push(session, a["https"], token, f"local-{i}")
            load.answers.append((f"local-{i}", status, 0.0))
        assert load.refused() == []
        primary.start()  # back, empty, and without its replica

        async def waiting() -> dict[str, Any] | None:
            _, body = await _readyz(a["admin"])
            return body if "replica" in " ".join(body.get("degraded", [])) else None
        ready = await until(waiting, 15.0, "/readyz: Redis back, replicas short")
        assert ready["spool"]["local"]["depth"] == 10, ready
        # Room for a mover that does not wait for the replicas to show itself: not a
        # timing assertion, the check is that each item arrives exactly once below.
        await asyncio.sleep(4)
        assert deliveries(record)[0] == Counter(), "delivered before any replica held it"
        replica.start()
        back_at = time.monotonic()
        await _all_delivered(record, load.ok(), 30.0, processes[1].lines)
        received = _check_once(record, load)
        assert sorted(received) == sorted(load.ok())
        print(f"local move: {len(load.ok())} answered 200, {sum(received.values())} delivered, "
              f"{time.monotonic() - back_at:.1f} s after the replica restarted")
    finally:
        replica.stop()
        primary.stop()
