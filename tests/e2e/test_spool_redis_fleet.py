"""``spool.backend: redis`` with real processes (docs/operations.md, docs/deploy.md): real
``redis-server``s, ``gateway serve`` instances and the sample backend on loopback ports.

* Two instances share one Redis: with the backend down, 100 pushes through A; A is killed
  with SIGKILL; the backend starts; B delivers all 100, in arrival order.
* Leases: two live instances deliver one route, never at once (the backend, which answers
  slowly, records how many pushes it was answering at the same time).
* Replication: with ``min_replicas: 1`` a push answered 200 is on the replica; the primary
  is killed, the replica promoted and the gateway pointed at it, and every push answered
  200 is delivered; pushes the replica could not confirm went to the local file (200),
  never to the queue. (Sentinel following a promotion by itself, without a restart, is
  ``test_spool_redis_failover.py``.)
* A Redis outage: pushes go on being answered 200 from the local file, ``/readyz`` says
  degraded; Redis returns, what the file held moves to the stream, everything arrives.

Every wait is bounded by a deadline and every process started here is killed at the end."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
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
from spool_harness import first_seen, free_port, push, recorded, redis_spool_config

pytestmark = [needs_redis, pytest.mark.slow]

Keys = dict[str, Path]


async def _get(port: int, path: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as plain, \
            plain.get(f"http://127.0.0.1:{port}{path}") as response:
        if path == "/metrics":
            return response.status, await response.text()
        return response.status, await response.json()


def _metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))


async def _serve(processes: list[CapturedProcess], config: Path) -> tuple[CapturedProcess,
                                                                         dict[str, int]]:
    gateway = gateway_command("serve", "-c", str(config))
    processes.append(gateway)
    return gateway, await gateway.serving()


async def _backend(processes: list[CapturedProcess], port: int, record: Path,
                   *extra: str) -> CapturedProcess:
    backend = gateway_command("backend", "--port", str(port), "--record", str(record), *extra)
    processes.append(backend)
    await backend.line("backend listening")
    return backend


async def _all_arrive(record: Path, sent: list[str], seconds: float,
                      context: list[str]) -> list[str]:
    """The backend's record once every push of ``sent`` is in it."""
    received: list[str] = await until(
        lambda: (lambda ids: ids if set(sent) <= set(ids) else None)(recorded(record)),
        seconds, context=context)
    return received


@pytest.fixture
async def server(tmp_path: Path) -> Any:
    started = RedisServer(tmp_path / "redis")
    yield started
    started.stop()


async def test_an_instance_killed_with_its_pushes_undelivered_loses_none_of_them(
        tmp_path: Path, server: RedisServer, cert_dir: Path, signing_keys: Keys,
        secret_hash: str, session: aiohttp.ClientSession,
        processes: list[CapturedProcess]) -> None:
    backend_port = free_port()  # nothing listens there: the backend is down
    configs = [redis_spool_config(tmp_path / name, cert_dir, signing_keys, secret_hash,
                                  backend_port, server.url) for name in ("a", "b")]
    a, a_ports = await _serve(processes, configs[0])
    token = await fetch_token(session, a_ports["https"])
    sent = [f"fleet-{i:03d}" for i in range(100)]
    for request_id in sent:
        started = time.monotonic()
        assert await push(session, a_ports["https"], token, request_id) == 200
        assert time.monotonic() - started < 3.0  # IRIS's limit
    client = redis.Redis(port=server.port)
    try:
        async def pending_at_a() -> bool:  # A is retrying the head: it holds entries
            found = await client.xpending(b"gateway:spool:q:/segments/aam", "deliverers")
            return bool(found["pending"]) and any(
                c["name"].startswith(f"{a.process.pid}:".encode()) for c in found["consumers"])
        await until(pending_at_a, 10.0, "A holding the route's first entries")
    finally:
        await client.aclose()
    # Checked at start: this Redis keeps nothing on disk, and min_replicas is 0.
    (warning,) = a.reason("spool_durability")
    assert "appendonly no" in warning["message"]
    b, b_ports = await _serve(processes, configs[1])  # both live; A holds the route
    a.kill()  # SIGKILL: its lease and its pending entries are left behind

    record = tmp_path / "received.jsonl"
    await _backend(processes, backend_port, record)
    received = await _all_arrive(record, sent, 30.0, b.lines)
    assert first_seen(received) == sent  # all of them, in arrival order, and nothing else

    async def drained() -> bool:
        status, body = await _get(b_ports["admin"], "/readyz")
        return status == 200 and body["spool"]["depth"] == 0
    await until(drained, 10.0, "B's /readyz showing the spool drained")
    _, text = await _get(b_ports["admin"], "/metrics")
    assert _metric(text, "gateway_spool_delivered_total") >= len(sent)


async def test_two_live_instances_never_deliver_a_route_at_once(
        tmp_path: Path, server: RedisServer, cert_dir: Path, signing_keys: Keys,
        secret_hash: str, client_ssl_ctx: Any, processes: list[CapturedProcess]) -> None:
    record = tmp_path / "received.jsonl"
    backend_port = free_port()
    # Each push takes the backend 0.15 s: a batch lasts longer than a lease (1 + 3 s), so
    # the holder must renew it, and overlapping senders would show in the peak.
    await _backend(processes, backend_port, record, "--delay", "0.15")
    configs = []
    for name in ("a", "b"):
        path = redis_spool_config(tmp_path / name, cert_dir, signing_keys, secret_hash,
                                  backend_port, server.url)
        config = yaml.safe_load(path.read_text())
        config["routes"][0]["timeout_seconds"] = 1
        path.write_text(yaml.safe_dump(config))
        configs.append(path)
    ports = [(await _serve(processes, path))[1]["https"] for path in configs]
    sent = [f"lease-{i:03d}" for i in range(40)]
    connector = aiohttp.TCPConnector(ssl=client_ssl_ctx)
    async with aiohttp.ClientSession(connector=connector) as session:
        tokens = [await fetch_token(session, port) for port in ports]
        for i, request_id in enumerate(sent):  # alternately through A and B
            assert await push(session, ports[i % 2], tokens[i % 2], request_id) == 200
        received = await _all_arrive(record, sent, 30.0, [])
        async with session.get(f"http://127.0.0.1:{backend_port}/_stats") as response:
            stats = await response.json()
    assert received == sent  # once each, in arrival order
    assert stats["max_in_flight"] == 1, "two deliveries of the route overlapped"


async def _offsets(primary: redis.Redis, replica: redis.Redis) -> bool:
    """Whether the replica has applied everything the primary wrote."""
    ours = (await primary.info("replication"))["master_repl_offset"]
    theirs = (await replica.info("replication")).get("slave_repl_offset", -1)
    return bool(ours == theirs)


async def test_a_promoted_replica_delivers_every_push_answered_200(
        tmp_path: Path, cert_dir: Path, signing_keys: Keys, secret_hash: str,
        session: aiohttp.ClientSession, processes: list[CapturedProcess]) -> None:
    primary = RedisServer(tmp_path / "primary")
    replica = RedisServer(tmp_path / "replica", "--replicaof", "127.0.0.1", str(primary.port))
    clients = [redis.Redis(port=primary.port), redis.Redis(port=replica.port)]
    try:
        async def linked() -> bool:
            return (await clients[1].info("replication")).get("master_link_status") == "up"
        await until(linked, 10.0, "the replica in sync with the primary")
        backend_port = free_port()
        config = redis_spool_config(tmp_path / "gw", cert_dir, signing_keys, secret_hash,
                                    backend_port, primary.url, min_replicas=1)
        gateway, ports = await _serve(processes, config)
        token = await fetch_token(session, ports["https"])
        sent = [f"repl-{i:02d}" for i in range(50)]
        for request_id in sent:
            assert await push(session, ports["https"], token, request_id) == 200

        assert replica.process is not None
        status, ready = await _get(ports["admin"], "/readyz")
        assert status == 200 and ready["status"] == "ready", ready
        os.kill(replica.process.pid, signal.SIGSTOP)  # the replica stops acknowledging
        unconfirmed = [await push(session, ports["https"], token, f"unconfirmed-{i}")
                       for i in range(3)]
        os.kill(replica.process.pid, signal.SIGCONT)
        assert unconfirmed == [200] * 3, "a push no replica confirmed was not kept locally"
        await until(lambda: _offsets(*clients), 10.0, "the replica catching up")

        primary.stop()  # SIGKILL
        await clients[1].execute_command("REPLICAOF", "NO", "ONE")
        gateway.kill()
        settings = yaml.safe_load(config.read_text())
        settings["spool"]["url"] = replica.url  # point the gateway at the new primary
        config.write_text(yaml.safe_dump(settings))
        again, again_ports = await _serve(processes, config)
        status, ready = await _get(again_ports["admin"], "/readyz")  # no replica left
        assert status == 200 and ready["status"] == "degraded", ready
        assert "fewer than min_replicas=1" in ready["spool"]["degraded"]
        record = tmp_path / "received.jsonl"
        await _backend(processes, backend_port, record)
        received = await _all_arrive(record, sent, 30.0, context=again.lines)
        assert [x for x in received if not x.startswith("unconfirmed-")] == sent  # in order
        assert len(received) == len(set(received))  # and once each
    finally:
        for client in clients:
            await client.aclose()
        replica.stop()
        primary.stop()


async def test_a_redis_outage_spools_locally_and_loses_nothing(
        tmp_path: Path, cert_dir: Path, signing_keys: Keys, secret_hash: str,
        session: aiohttp.ClientSession, processes: list[CapturedProcess]) -> None:
    # Redis's own disk makes the stream survive the restart: the lose-nothing setting.
    server = RedisServer(tmp_path / "redis", "--appendonly", "yes", "--appendfsync", "always")
    try:
        backend_port = free_port()
        config = redis_spool_config(tmp_path / "gw", cert_dir, signing_keys, secret_hash,
                                    backend_port, server.url)
        gateway, ports = await _serve(processes, config)
        token = await fetch_token(session, ports["https"])
        sent: list[str] = []
        stopped_at: list[int] = []

        async def pushing() -> None:
            for i in range(400):
                if len(stopped_at) and len(sent) >= stopped_at[0] + 20:
                    return
                started = time.monotonic()
                status = await push(session, ports["https"], token, f"outage-{i:03d}")
                assert status == 200 and time.monotonic() - started < 3.0
                sent.append(f"outage-{i:03d}")

        pusher = asyncio.get_running_loop().create_task(pushing())
        await until(lambda: len(sent) >= 20 or pusher.done(), 10.0, context=gateway.lines)
        server.stop()  # SIGKILL in the middle of the pushes
        stopped_at.append(len(sent))
        await asyncio.wait_for(pusher, 30)
        status, ready = await _get(ports["admin"], "/readyz")
        assert status == 200 and ready["status"] == "degraded", ready
        assert "spooled in" in " ".join(ready["degraded"]), json.dumps(ready)
        _, text = await _get(ports["admin"], "/metrics")
        assert _metric(text, "gateway_spool_fallback_total") >= 15

        server.start()  # the same port and directory: the stream is back from its AOF

        async def moved() -> bool:
            status, body = await _get(ports["admin"], "/readyz")
            return (status == 200 and body["status"] == "ready"
                    and body["spool"].get("local", {}).get("depth") == 0)
        await until(moved, 20.0, "the local file moved to the stream")
        record = tmp_path / "received.jsonl"
        await _backend(processes, backend_port, record)
        received = await _all_arrive(record, sent, 30.0, context=gateway.lines)
        # Before the outage in the stream's order, then what the file held, in its order.
        assert [x for x in first_seen(received) if x in set(sent)] == sent
        logged = {r["reason_id"] for r in gateway.records() if "reason_id" in r}
        assert {"spool_fallback", "spool_moved"} <= logged, json.dumps(sorted(logged))
    finally:
        server.stop()
