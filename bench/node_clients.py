"""The Node OAuth and JOSE clients against a real gateway on loopback (docs/clients.md).

The test suite does not depend on npm, so the Node clients are proven here instead:
openid-client v6 and v5, simple-oauth2, jose, jsonwebtoken with jwks-rsa. Once:

    npm install --prefix bench/.node-clients openid-client@6 \\
        openid-client5@npm:openid-client@5 simple-oauth2@5 jose@5 jsonwebtoken@9 jwks-rsa@3
    python bench/node_clients.py

It makes development certificates and a signing key in a temporary directory, starts the
sample backend and ``gateway serve`` on free loopback ports (the issuer is the listener's own
address), runs ``bench/node_clients.mjs`` with the CA in ``NODE_EXTRA_CA_CERTS``, prints
one line per check and exits 1 when a check that must pass failed. Everything it started is
stopped at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from gateway.config.hashes import hash_secret
from gateway.oauth.keys import generate_key
from gateway.tools.certs import create_dev_certificates, write_private

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procs import Processes, free_port

HERE = Path(__file__).resolve().parent
MODULES = HERE / ".node-clients"
CLIENT_ID, POST_CLIENT_ID, AUDIENCE = "aam", "node-post", "partner-api"


def _config(workdir: Path, port: int, backend_port: int, secret: str) -> Path:
    certs = workdir / "certs"
    create_dev_certificates(certs)
    write_private(certs / "jwt-node-1.pem", generate_key("ES256"))
    hashed = hash_secret(secret)
    config = {
        "server": {"host": "127.0.0.1", "port": port,
                   "tls": {"cert_file": "certs/server.crt", "key_file": "certs/server.key"},
                   "admin": {"host": "127.0.0.1", "port": free_port()}},
        "tokens": {"issuer": f"https://localhost:{port}", "audience": AUDIENCE,
                   "keys": [{"kid": "node-1", "private_key_file": "certs/jwt-node-1.pem"}]},
        "clients": [{"client_id": CLIENT_ID, "secret_hash": hashed, "scopes": ["segments:write"]},
                    {"client_id": POST_CLIENT_ID, "secret_hash": hashed,
                     "client_secret_post": True, "scopes": ["segments:write"]}],
        "routes": [{"path": "/segments/aam",
                    "upstream": f"http://127.0.0.1:{backend_port}/segments/aam",
                    "scope": "segments:write"}],
        "logging": {"level": "warning"},
    }
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def main() -> int:
    node = shutil.which("node")
    if node is None or not (MODULES / "node_modules" / "openid-client").is_dir():
        print("node or the clients are missing; see this file's docstring for the npm "
              "install line", file=sys.stderr)
        return 2
    procs = Processes()
    with tempfile.TemporaryDirectory(prefix="gateway-node-") as directory:
        workdir = Path(directory)
        try:
            port, backend_port = free_port(), free_port()
            secret = "node-clients-secret-for-loopback-only"
            config = _config(workdir, port, backend_port, secret)
            procs.start("backend", [sys.executable, "-m", "gateway", "backend", "--port",
                                    str(backend_port)], ready="backend listening")
            procs.start("gateway", [sys.executable, "-m", "gateway", "serve", "-c", str(config)],
                        ready="gateway serving")
            options = {"module_dir": str(MODULES), "issuer": f"https://localhost:{port}",
                       "client_id": CLIENT_ID, "client_secret": secret,
                       "post_client_id": POST_CLIENT_ID, "audience": AUDIENCE}
            result = subprocess.run(
                [node, str(HERE / "node_clients.mjs"), json.dumps(options)],
                capture_output=True, text=True, timeout=120, check=False,
                env={**os.environ, "NODE_EXTRA_CA_CERTS": str(workdir / "certs" / "ca.crt")})
        finally:
            procs.stop_all()
    for line in result.stdout.splitlines():
        check = json.loads(line)
        print(f"{'ok  ' if check['ok'] else 'FAIL'}  {check['client']}: {check['detail']}")
    if result.stderr.strip():
        print(result.stderr.strip()[-2000:], file=sys.stderr)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
