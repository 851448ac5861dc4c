"""Shared pieces of the end-to-end tests: the test client, the config they start with."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from gateway.config.hashes import hash_opaque

SEED_CREDENTIAL = "zq2LOO1CcYGrODS5nXiNHpEz97eCpVHAoMF8pAgCntXAzxp5uRV7DTAE2qtPLjhMQwrEX3O6MHV4S"
VECTORS = Path(__file__).resolve().parents[1] / "vectors"  # Adobe's sample requests, byte for byte
CLIENT_ID = "aam"
CLIENT_SECRET = "e2e-secret-for-tests-only"
AUDIENCE = "partner-api"
ISSUER = "https://localhost:8443"



def base_config(cert_dir: Path, signing_keys: dict[str, Path], secret_hash: str,
                upstream: str | list[str]) -> dict[str, Any]:
    return {
        "server": {
            "host": "127.0.0.1", "port": 0, "http_port": 0,
            "tls": {"cert_file": str(cert_dir / "server.crt"),
                    "key_file": str(cert_dir / "server.key")},
            "admin": {"host": "127.0.0.1", "port": 0},
            "max_body_bytes": 65536,
        },
        "tokens": {"issuer": ISSUER, "audience": AUDIENCE, "algorithm": "ES256",
                   "keys": [{"kid": "k1", "private_key_file": str(signing_keys["ES256"])}]},
        "clients": [{"client_id": CLIENT_ID, "secret_hash": secret_hash,
                     "credential_hash": hash_opaque(SEED_CREDENTIAL),
                     "scopes": ["segments:write"]},
                    {"client_id": "reader", "secret_hash": secret_hash, "scopes": ["read"]}],
        "routes": [{"path": "/segments/aam", "methods": ["POST", "GET"],
                    "upstream": upstream, "scope": "segments:write"}],
    }


def basic(client_id: str, secret: str) -> str:
    """RFC 6749 §2.3.1: Basic base64(urlencode(id):urlencode(secret))."""
    pair = f"{quote(client_id, safe='')}:{quote(secret, safe='')}"
    return "Basic " + base64.b64encode(pair.encode()).decode()


async def fetch_token(session: aiohttp.ClientSession, port: int,
                      client_id: str = CLIENT_ID, secret: str = CLIENT_SECRET) -> str:
    async with session.post(
        f"https://localhost:{port}/oauth2/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": basic(client_id, secret)},
    ) as response:
        body = await response.read()
        assert response.status == 200, body
        return str(json.loads(body)["access_token"])
