"""The container image, built from the Dockerfile and run for real (docs/deploy.md,
"Container image"): a read-only root, the configuration and the development certificates
and key mounted read-only at /etc/gateway, Adobe's sample token and segment requests through
it to the sample backend on the host network, pid and spool files in the volume, the
HEALTHCHECK, ``gateway reload`` inside the container, and SIGTERM finishing a push in flight
before the exit status 0. Loopback only: the container shares the host's network."""

from __future__ import annotations

import gzip
import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.config.hashes import hash_opaque
from gateway.tools.seed import SEED_CREDENTIAL

from container_harness import Podman, free_port, http_get
from polling import until_blocking

pytestmark = [pytest.mark.container, pytest.mark.slow]

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
# Adobe's sample Basic credential (tests/vectors/token-request.http).
UID = 10001


def _exchange(port: int, context: ssl.SSLContext, request: bytes) -> tuple[int, dict[str, str],
                                                                         bytes]:
    """One raw HTTP/1.1 request over TLS: the vector's bytes exactly as they are."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = tls.recv(65536)
            assert chunk, data
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in
                   (line.split(":", 1) for line in lines[1:])}
        length = int(headers["content-length"])
        while len(body) < length:
            chunk = tls.recv(65536)
            assert chunk, body
            body += chunk
    return int(lines[0].split(" ")[1]), headers, body


class Backend:
    """``gateway backend`` on a loopback port of the host, recording every push."""

    def __init__(self, record: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "backend", "--port", "0", "--record", str(record)],
            stdout=subprocess.PIPE, text=True, start_new_session=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line.startswith("backend listening on http://"), line
        self.url = line.split()[-1]
        self.port = int(self.url.rsplit(":", 1)[1])

    def stats(self) -> dict[str, Any]:
        status, body = http_get(self.port, "/_stats")
        assert status == 200, body
        return dict(json.loads(body))

    def control(self, **settings: object) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            connection.request("POST", "/_control", body=json.dumps(settings).encode(),
                               headers={"Content-Type": "application/json"})
            assert connection.getresponse().status == 200
        finally:
            connection.close()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=15)
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[Backend]:
    started = Backend(tmp_path / "received.jsonl")
    yield started
    started.stop()


@pytest.fixture
def etc(tmp_path: Path, backend: Backend) -> dict[str, Any]:
    """/etc/gateway as an operator mounts it: config.yaml naming no pid, state or spool
    path, the development chain from ``gateway certs`` and a key from ``gateway keys
    generate``, readable by the image's user 10001 only."""
    folder = tmp_path / "etc"
    certs = folder / "certs"
    for argv in (["certs", "--dir", str(certs)],
                 ["keys", "generate", "--alg", "ES256", "--kid", "k1",
                  "--out", str(certs / "jwt-k1.pem")]):
        subprocess.run([sys.executable, "-m", "gateway", *argv], check=True,
                       capture_output=True, timeout=60)
    ports = {"https": free_port(), "admin": free_port()}
    config = {
        "server": {"host": "127.0.0.1", "port": ports["https"],
                   "tls": {"cert_file": "certs/server.crt", "key_file": "certs/server.key"},
                   "admin": {"host": "127.0.0.1", "port": ports["admin"]}},
        "tokens": {"issuer": f"https://localhost:{ports['https']}", "audience": "partner-api",
                   "algorithm": "ES256",
                   "keys": [{"kid": "k1", "private_key_file": "certs/jwt-k1.pem"}]},
        "clients": [{"client_id": "aam", "credential_hash": hash_opaque(SEED_CREDENTIAL),
                     "scopes": ["segments:write"]}],
        "routes": [
            {"path": "/segments/aam", "methods": ["POST", "GET"],
             "upstream": f"{backend.url}/segments/aam", "scope": "segments:write"},
            # A spool route, so the spool file exists and must land in the volume.
            {"path": "/segments/later", "upstream": f"{backend.url}/segments/later",
             "scope": "segments:write", "delivery": "spool"},
        ],
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    # The key stays 0600 (as `gateway keys generate` writes it), owned by the image's user.
    for path in [folder, certs, *folder.rglob("*")]:
        os.chown(path, UID, UID)
    return {"dir": folder, "ports": ports, "ca": certs / "ca.crt"}


@pytest.fixture
def container(podman: Podman, image: str, etc: dict[str, Any]) -> Iterator[str]:
    name = f"gateway-test-{uuid.uuid4().hex[:8]}"
    podman("run", "--detach", "--name", name, "--runtime", "runc", "--network", "host",
           "--read-only", "--health-interval", "disable",
           "--env", f"GATEWAY_HEALTHCHECK_URL=http://127.0.0.1:{etc['ports']['admin']}/livez",
           "--volume", f"{etc['dir']}:/etc/gateway:ro", image)
    try:
        yield name
    finally:
        podman("rm", "--force", "--volumes", name, check=False)


def test_image_runs_as_a_numeric_user_with_a_health_check_and_no_secrets(
        podman: Podman, image: str) -> None:
    inspected = json.loads(podman("image", "inspect", image).stdout)[0]
    config = inspected["Config"]
    assert config["User"] == "10001:10001"
    assert config["WorkingDir"] == "/var/lib/gateway"
    assert "/var/lib/gateway" in config["Volumes"]
    assert config["Cmd"] == ["gateway", "serve", "-c", "/etc/gateway/config.yaml"]
    assert "GATEWAY_STATE_DIR=/var/lib/gateway" in config["Env"]
    assert config["StopSignal"] == "SIGTERM"
    # Kept by --format docker (an OCI image has no health check).
    assert inspected["Healthcheck"]["Test"][0] == "CMD"
    assert "/livez" in " ".join(inspected["Healthcheck"]["Test"])
    # No key, certificate or secret: /etc/gateway is empty and nothing outside the system
    # CA store looks like one; no pip or setuptools in the venv.
    found = podman("run", "--rm", "--runtime", "runc", "--health-interval", "disable",
                   image, "python3", "-c",
                   "import os, pathlib, sys; "
                   "print(os.listdir('/etc/gateway')); "
                   "print(sorted(str(p) for p in pathlib.Path('/').glob('**/*') "
                   "if p.suffix in ('.pem', '.key', '.p12', '.jks') "
                   "and not str(p.resolve()).startswith(('/proc', '/sys', '/etc/ssl', "
                   "'/usr/share/ca-certificates')))); "
                   "print(sorted(p.name for p in pathlib.Path(sys.prefix, 'lib', "
                   "'python3.11', 'site-packages').iterdir() "
                   "if p.name.split('-')[0] in ('pip', 'setuptools')))").stdout.splitlines()
    assert found == ["[]", "[]", "[]"]


def test_serves_adobe_sample_read_only_and_drains_on_sigterm(
        podman: Podman, container: str, etc: dict[str, Any], backend: Backend) -> None:
    admin = etc["ports"]["admin"]

    def logs() -> str:
        done = podman("logs", container, check=False)
        return done.stdout + done.stderr

    until_blocking(lambda: http_get(admin, "/readyz")[0] == 200, 60,
                   f"/readyz 200; logs:\n{logs()}")
    assert podman("healthcheck", "run", container).returncode == 0

    # Adobe's sample requests, byte for byte, over TLS to the container.
    context = ssl.create_default_context(cafile=str(etc["ca"]))
    status, headers, body = _exchange(etc["ports"]["https"], context,
                                      (VECTORS / "token-request.http").read_bytes())
    assert status == 200, body
    document = json.loads(gzip.decompress(body) if headers.get("content-encoding") == "gzip"
                          else body)
    token = document["access_token"]
    request = (VECTORS / "segment-request.http").read_bytes().replace(b"{TOKEN}", token.encode())
    status, _, body = _exchange(etc["ports"]["https"], context, request)
    assert status == 200, body
    payload = request.partition(b"\r\n\r\n")[2]
    last = backend.stats()["last"]
    assert last["method"] == "GET" and last["body_bytes"] == len(payload)
    assert last["headers"]["X-Gateway-Client-Id"] == "aam"
    assert "Authorization" not in last["headers"]

    # The root is read-only, the process is 10001, and what it writes is in the volume.
    probe = podman("exec", container, "python3", "-c",
                   "import os; print(os.getuid()); print(sorted(os.listdir("
                   "'/var/lib/gateway/var'))); open('/opt/gateway/probe', 'w')", check=False)
    assert probe.returncode != 0 and "Read-only file system" in probe.stderr
    uid, listing = probe.stdout.splitlines()
    assert uid == str(UID)
    assert {"gateway.pid", "spool.db"} <= set(json.loads(listing.replace("'", '"')))

    # `gateway reload` inside the container finds the pid file through GATEWAY_STATE_DIR.
    reload = podman("exec", container, "gateway", "reload", "-c", "/etc/gateway/config.yaml")
    assert "SIGHUP sent" in reload.stdout
    until_blocking(lambda: '"reloaded"' in logs(), 60, "the reload in the log")

    # SIGTERM while a push is in flight: the push is answered 200, then the exit is 0.
    backend.control(delay=1.0)
    answered: list[int] = []
    push = threading.Thread(target=lambda: answered.append(
        _exchange(etc["ports"]["https"], context, request)[0]))
    push.start()
    until_blocking(lambda: backend.stats()["in_flight"] == 1, 60,
                   "the push to reach the backend")
    podman("kill", "--signal", "TERM", container)
    exit_status = podman("wait", container, timeout=60).stdout.strip()
    push.join(timeout=30)
    assert answered == [200]
    assert exit_status == "0", logs()
    assert '"draining"' in logs() and '"stopped"' in logs()
    assert backend.stats()["requests"] == 2
