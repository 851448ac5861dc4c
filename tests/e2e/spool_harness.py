"""What the spool's process tests share: a spool-route configuration, pushes, and the
backend's record of what arrived."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from prometheus_client.parser import text_string_to_metric_families

from gateway.tools.seed import SEED_PAYLOAD

from e2e_harness import base_config
from proc_harness import CapturedProcess, gateway_command

__all__ = ["admin_metrics", "backend_process", "direct_and_spool_config", "first_seen",
           "free_port", "push", "recorded", "redis_spool_config", "spool_config"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spool_config(tmp_path: Path, cert_dir: Path, signing_keys: dict[str, Path], secret_hash: str,
            backend_port: int, workers: int = 1) -> Path:
    config = base_config(cert_dir, signing_keys, secret_hash,
                         f"http://127.0.0.1:{backend_port}/segments/aam")
    config["server"].update({"workers": workers, "port": free_port(), "http_port": None})
    config["server"]["admin"]["port"] = free_port()
    config["routes"][0].update({"delivery": "spool", "timeout_seconds": 2})
    config["state"] = {"path": str(tmp_path / "state.db")}
    config["spool"] = {"retry_initial_seconds": 0.05, "retry_max_seconds": 0.3}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def direct_and_spool_config(tmp_path: Path, cert_dir: Path, signing_keys: dict[str, Path],
                            secret_hash: str, backend_port: int) -> Path:
    """Two routes to one backend: ``/segments/aam`` direct, ``/segments/spooled`` spooled."""
    upstream = f"http://127.0.0.1:{backend_port}/segments/aam"
    config = base_config(cert_dir, signing_keys, secret_hash, upstream)
    config["server"].update({"port": free_port(), "http_port": None})
    config["server"]["admin"]["port"] = free_port()
    config["routes"].append({**config["routes"][0], "path": "/segments/spooled",
                             "delivery": "spool"})
    config["state"] = {"path": str(tmp_path / "state.db")}
    config["spool"] = {"retry_initial_seconds": 0.05, "retry_max_seconds": 0.2}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def redis_spool_config(directory: Path, cert_dir: Path, signing_keys: dict[str, Path],
                       secret_hash: str, backend_port: int, url: str,
                       **spool: Any) -> Path:
    """``spool_config`` in ``directory`` (one instance's own files and ports), with
    ``spool.backend: redis`` at ``url`` and the ``spool`` keys given."""
    directory.mkdir(parents=True, exist_ok=True)
    path = spool_config(directory, cert_dir, signing_keys, secret_hash, backend_port)
    config = yaml.safe_load(path.read_text())
    config["spool"].update({"backend": "redis", "url": url, **spool})
    path.write_text(yaml.safe_dump(config))
    return path


async def push(session: aiohttp.ClientSession, port: int, token: str, request_id: str) -> int:
    async with session.post(f"https://localhost:{port}/segments/aam", data=SEED_PAYLOAD,
                            headers={"Authorization": f"Bearer {token}",
                                     "Content-Type": "application/json",
                                     "X-Request-Id": request_id}) as response:
        await response.read()
        return response.status


def recorded(path: Path) -> list[str]:
    """The X-Request-Id of every push the backend recorded, in its order of arrival."""
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    entries = [json.loads(x)["headers"] for x in lines if x.endswith("}")]
    return [next((v for k, v in h.items() if k.lower() == "x-request-id"), "") for h in entries]


def first_seen(ids: list[str]) -> list[str]:
    return list(dict.fromkeys(ids))  # at least once: a duplicate is allowed, a loss is not


async def backend_process(processes: list[CapturedProcess], record: Path | None = None,
                          port: int = 0) -> tuple[str, CapturedProcess]:
    """``gateway backend`` as its own process: (its base URL, the process)."""
    args = ["backend", "--port", str(port)] + (["--record", str(record)] if record else [])
    process = gateway_command(*args)
    processes.append(process)
    line = await process.line("backend listening")
    return line.rsplit(" ", 1)[1], process


async def admin_metrics(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The admin listener's /metrics: (name, sorted labels) -> value."""
    async with aiohttp.ClientSession() as plain, \
            plain.get(f"http://127.0.0.1:{port}/metrics") as response:
        assert response.status == 200
        text = await response.text()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}
