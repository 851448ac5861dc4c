"""deploy/compose/: references that meet and a configuration the loader accepts; then the
fleet run for real with podman-compose: two gateways from the image, one Redis, the sample
backend. A token one gateway issued is accepted by the other, a revocation on one is
refused by the other (the shared Redis), and both stop with the exit status 0."""

from __future__ import annotations

import http.client
import json
import os
import re
import secrets
import shutil
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import yaml

from gateway.config import load
from gateway.tools.seed import SEED_CREDENTIAL

from container_harness import Podman, free_port, http_get
from polling import until_blocking

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "deploy" / "compose"
VECTORS = REPO / "tests" / "vectors"
# What compose.yaml needs from .env or the environment; every other ${VAR} has a default.
REQUIRED = {"REDIS_PASSWORD"}


def _compose() -> dict[str, Any]:
    return dict(yaml.safe_load((COMPOSE / "compose.yaml").read_text()))


def test_references_meet_and_only_the_password_is_required() -> None:
    compose = _compose()
    services = compose["services"]
    assert {"redis", "backend", "gateway1", "gateway2"} == set(services)
    declared = set(compose["volumes"])
    for name, service in services.items():
        for dependency in service.get("depends_on", []):
            assert dependency in services, (name, dependency)
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE / source).is_dir(), volume
            else:
                assert source in declared, volume
    for name in ("gateway1", "gateway2"):
        service = services[name]
        assert service["read_only"] is True
        assert "./etc:/etc/gateway:ro" in service["volumes"]
        assert service["stop_grace_period"] == "40s"  # the 35 s drain
        assert all(p.startswith("127.0.0.1:") for p in service["ports"])
    text = (COMPOSE / "compose.yaml").read_text()
    bare = {m.group(1) for m in re.finditer(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", text)}
    assert bare == REQUIRED
    config = yaml.safe_load((COMPOSE / "etc" / "config.yaml").read_text())
    hosts = {config["state"]["url"].split("//")[1].split(":")[0],
             config["routes"][0]["upstream"].split("//")[1].split(":")[0]}
    assert hosts == {"redis", "backend"} and hosts <= set(services)


def test_the_fleets_configuration_loads(tmp_path: Path, cert_dir: Path,
                                        signing_keys: dict[str, Path]) -> None:
    etc = tmp_path / "etc"
    shutil.copytree(COMPOSE / "etc", etc)
    (etc / "certs").mkdir()
    for name in ("server.crt", "server.key"):
        shutil.copy(cert_dir / name, etc / "certs" / name)
    shutil.copy(signing_keys["ES256"], etc / "certs" / "jwt-k1.pem")
    settings = load(etc / "config.yaml", {"REDIS_PASSWORD": "x" * 16,
                                          "GATEWAY_STATE_DIR": "/var/lib/gateway"})
    assert settings.warnings == ()
    assert (settings.state.backend, settings.spool.backend) == ("redis", "redis")
    assert settings.spool.path == Path("/var/lib/gateway/var/spool.db")


# -- the fleet, for real ---------------------------------------------------------------

def _https(port: int, context: ssl.SSLContext, method: str, path: str,
           headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
    connection = http.client.HTTPSConnection("localhost", port, timeout=10, context=context)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.fixture
def fleet(podman: Podman, image: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    if shutil.which("podman-compose") is None:
        pytest.skip("podman-compose is not installed (.ci/run installs it)")
    try:
        redis_image = podman.base_image("redis", ("redis-server",))
    except RuntimeError as exc:
        pytest.skip(str(exc))
    folder = tmp_path / "compose"
    shutil.copytree(COMPOSE, folder)
    certs = folder / "etc" / "certs"
    for argv in (["certs", "--dir", str(certs)],
                 ["keys", "generate", "--alg", "ES256", "--kid", "k1",
                  "--out", str(certs / "jwt-k1.pem")]):
        subprocess.run([sys.executable, "-m", "gateway", *argv], check=True,
                       capture_output=True, timeout=60)
    for path in [certs, *certs.iterdir()]:
        os.chown(path, 10001, 10001)
    ports = {name: free_port() for name in
             ("GATEWAY1_PORT", "GATEWAY1_ADMIN_PORT", "GATEWAY2_PORT", "GATEWAY2_ADMIN_PORT",
              "BACKEND_PORT")}
    project = f"gwtest{secrets.token_hex(4)}"
    env = {**podman.env, "GATEWAY_IMAGE": image, "REDIS_IMAGE": redis_image,
           "REDIS_PASSWORD": secrets.token_hex(16),
           **{k: str(v) for k, v in ports.items()}}

    def compose(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["podman-compose", "--project-name", project, *args],
                              cwd=folder, env=env, capture_output=True, text=True,
                              timeout=timeout, check=False)

    up = compose("up", "-d")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield {"compose": compose, "ports": ports, "project": project,
               "ca": certs / "ca.crt"}
    finally:
        compose("down", "--volumes", timeout=240)


@pytest.mark.container
@pytest.mark.slow
def test_two_gateways_share_redis_and_stop_cleanly(fleet: dict[str, Any],
                                                   podman: Podman) -> None:
    ports = fleet["ports"]
    for admin in (ports["GATEWAY1_ADMIN_PORT"], ports["GATEWAY2_ADMIN_PORT"]):
        until_blocking(lambda admin=admin: http_get(admin, "/readyz")[0] == 200, 90,
                       f"/readyz on {admin}: {fleet['compose']('logs').stdout[-3000:]}")
    context = ssl.create_default_context(cafile=str(fleet["ca"]))
    basic = {"Authorization": f"Basic {SEED_CREDENTIAL}",
             "Content-Type": "application/x-www-form-urlencoded"}
    status, body = _https(ports["GATEWAY1_PORT"], context, "POST", "/oauth2/token", basic,
                          b"grant_type=client_credentials")
    assert status == 200, body
    token = json.loads(body)["access_token"]
    payload = (VECTORS / "segment-payload.json").read_bytes()
    push = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    # Issued by gateway1, accepted by gateway2: the same keys.
    status, body = _https(ports["GATEWAY2_PORT"], context, "POST", "/segments/aam", push,
                          payload)
    assert status == 200, body
    status, stats = http_get(ports["BACKEND_PORT"], "/_stats")
    assert status == 200
    assert json.loads(stats)["last"]["body_bytes"] == len(payload)
    # Revoked on gateway1, refused by gateway2: the revocation went through Redis.
    status, body = _https(ports["GATEWAY1_PORT"], context, "POST", "/oauth2/revoke", basic,
                          urlencode({"token": token}).encode())
    assert status == 200, body
    until_blocking(lambda: _https(ports["GATEWAY2_PORT"], context, "POST", "/segments/aam",
                                  push, payload)[0] == 401,
                   90, "gateway2 to refuse the revoked token")

    stop = fleet["compose"]("stop", timeout=240)
    assert stop.returncode == 0, stop.stderr
    for name in ("gateway1", "gateway2"):
        inspected = podman("inspect", "--format", "{{.State.ExitCode}}",
                           f"{fleet['project']}_{name}_1")
        assert inspected.stdout.strip() == "0", name
