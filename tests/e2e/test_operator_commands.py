"""An operator's first hour with real processes: ``server.pid_file`` locked while a gateway
runs, a second gateway refused (same pid file, or another pid file on the same port, with
and without workers), bind errors naming the key, ``gateway reload`` and ``gateway stop``
through the pid file, and a SIGHUP with an unknown algorithm refused, logged and counted in
the single process and in the supervisor. Every wait has a deadline; every process started
here is killed at the end."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from e2e_harness import base_config, fetch_token
from proc_harness import GatewayProcess

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True,
                          text=True, timeout=90, check=False)


@pytest.fixture
async def launch(tmp_path: Path, cert_dir: Path, signing_keys: dict[str, Path],
                 secret_hash: str, backend: tuple[str, web.Application]
                 ) -> AsyncIterator[Callable[..., Any]]:
    """``launch(name, workers=1, **server)``: write ``name``.yaml in one shared directory
    (so the default pid file is shared too) and start ``gateway serve`` on it."""
    started: list[GatewayProcess] = []

    def _launch(name: str, workers: int = 1, **server: Any) -> tuple[GatewayProcess, Path,
                                                                     dict[str, Any]]:
        config = base_config(cert_dir, signing_keys, secret_hash, backend[0] + "/segments/aam")
        config["server"].update({"workers": workers, "port": _free_port(), "http_port": None})
        config["server"]["admin"]["port"] = _free_port()
        config["server"].update(server)
        config["state"] = {"path": str(tmp_path / f"{name}.db")}
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        process = GatewayProcess(path)
        started.append(process)
        return process, path, config

    yield _launch
    for process in started:
        process.kill()


async def _exit_code(process: GatewayProcess) -> int:
    await process.wait_for(lambda: process.process.poll() is not None, 60)
    return int(process.process.returncode)


async def _metrics(admin_port: int) -> str:
    async with aiohttp.ClientSession() as plain, \
            plain.get(f"http://127.0.0.1:{admin_port}/metrics") as response:
        return await response.text()


@pytest.mark.parametrize("workers", [1, 2])
async def test_a_second_gateway_is_refused_by_pid_file_or_by_port(
        launch: Any, tmp_path: Path, workers: int) -> None:
    first, _, config = launch("first", workers=workers)
    ports = await first.serving(60)
    pid_file = tmp_path / "var" / "gateway.pid"
    assert pid_file.read_text().strip() == str(first.process.pid)

    # The same pid file (the default beside a config in the same directory).
    same, same_config, _ = launch("same-pid-file", workers=workers)
    assert await _exit_code(same) == 1
    assert any(f"another gateway (pid {first.process.pid}) is running with server.pid_file "
               f"{pid_file}; stop it first (`gateway stop -c {same_config}`)" in line
               for line in same.lines), same.lines

    # Its own pid file, the first one's public port: refused before any worker binds
    # with SO_REUSEPORT, which would have split the traffic between the two.
    port_clash, _, _ = launch("same-port", workers=workers, port=ports["https"],
                              pid_file="var/other.pid")
    assert await _exit_code(port_clash) == 1
    assert any(f"cannot listen on server.port (127.0.0.1:{ports['https']}): Address already "
               "in use" in line for line in port_clash.lines), port_clash.lines

    admin_clash, _, _ = launch("same-admin", workers=workers, pid_file="var/third.pid",
                               admin={"host": "127.0.0.1", "port": ports["admin"]})
    assert await _exit_code(admin_clash) == 1
    assert any(f"cannot listen on server.admin.port (127.0.0.1:{ports['admin']})" in line
               for line in admin_clash.lines), admin_clash.lines
    assert first.process.poll() is None
    assert config["server"]["workers"] == workers

    # kill -9 leaves the file behind, but not its lock: the next start is not blocked.
    first.kill()
    again, _, _ = launch("first", workers=workers)
    await again.serving(60)
    assert pid_file.read_text().strip() == str(again.process.pid)


async def test_http_port_clash_names_its_key(launch: Any) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        gateway, _, _ = launch("http", http_port=taken.getsockname()[1])
        assert await _exit_code(gateway) == 1
        assert any("cannot listen on server.http_port" in line for line in gateway.lines)
    finally:
        taken.close()


async def test_reload_and_stop_through_the_pid_file(launch: Any, session: Any,
                                                    tmp_path: Path) -> None:
    gateway, path, config = launch("commands")
    ports = await gateway.serving()
    await fetch_token(session, ports["https"])

    config["clients"] = [c for c in config["clients"] if c["client_id"] != "reader"]
    path.write_text(yaml.safe_dump(config))
    done = _command("reload", "-c", str(path))
    assert done.returncode == 0, done.stderr
    assert f"SIGHUP sent to pid {gateway.process.pid}" in done.stdout
    reloaded = await gateway.wait_for(lambda: gateway.reason("reloaded"))
    assert reloaded[0]["clients"] == 1

    # An invalid file: check-config's errors, and no signal sent.
    config["tokens"]["algorithm"] = "es256"
    path.write_text(yaml.safe_dump(config))
    refused = _command("reload", "-c", str(path))
    assert refused.returncode == 2
    assert "tokens.algorithm: must be one of" in refused.stderr
    assert "not sent" in refused.stderr

    # stop works from the same (still invalid) file: it needs only server.pid_file.
    stopped = _command("stop", "-c", str(path))
    assert stopped.returncode == 0, stopped.stderr
    assert f"pid {gateway.process.pid} stopped" in stopped.stdout
    assert await _exit_code(gateway) == 0
    assert not (tmp_path / "var" / "gateway.pid").exists()
    assert not gateway.reason("reload_invalid")  # the refused reload never reached it

    nothing = _command("stop", "-c", str(path))
    assert nothing.returncode == 1
    assert "no gateway is running" in nothing.stderr


@pytest.mark.parametrize("workers", [1, 2])
async def test_sighup_with_an_unknown_algorithm_is_a_counted_refusal(
        launch: Any, session: Any, client_ssl_ctx: Any, workers: int) -> None:
    gateway, path, config = launch("algorithm", workers=workers)
    ports = await gateway.serving(60)
    config["tokens"]["algorithm"] = "es256"
    path.write_text(yaml.safe_dump(config))
    gateway.process.send_signal(signal.SIGHUP)
    refused = await gateway.wait_for(lambda: gateway.reason("reload_invalid"))
    assert "tokens.algorithm: must be one of 'ES256', 'RS256', 'EdDSA', 'HS256' (did you " \
           "mean 'ES256'?)" in refused[0]["message"]
    assert not any("Traceback" in line or "never retrieved" in line for line in gateway.lines)
    metrics = await _metrics(ports["admin"])
    assert 'gateway_config_reloads_total{result="error"} 1.0' in metrics
    await fetch_token(session, ports["https"])  # the running configuration still serves


async def test_any_failure_while_building_a_reload_is_refused_and_counted(
        gateway: Any, session: Any, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """Not only ConfigError: whatever the new configuration's objects raise while they are
    built, the reload is refused, logged (by type: the text may quote the file) and counted,
    instead of dying in a task nobody awaits. No file triggers it today, so the failure is
    injected where the runtime is built."""
    import gateway.serve.reload as reload_module

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("text that may quote a secret")

    monkeypatch.setattr(reload_module, "Runtime", broken)
    assert await gateway.reload() is False
    refused = [r for r in caplog.records if getattr(r, "reason_id", "") == "reload_invalid"]
    assert refused and "RuntimeError" in refused[0].getMessage()
    assert "secret" not in refused[0].getMessage()
    async with aiohttp.ClientSession() as plain, \
            plain.get(f"http://127.0.0.1:{gateway.ports['admin']}/metrics") as response:
        assert 'gateway_config_reloads_total{result="error"} 1.0' in await response.text()
    await fetch_token(session, gateway.ports["https"])
