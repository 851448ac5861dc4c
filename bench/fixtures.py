"""What every row shares, made once per run in a temp directory before any clock starts.

Development certificates (``gateway certs``' CA and a 127.0.0.1/localhost leaf), an ES256
signing key for the gateway and the anchors, an RS256 key (3072-bit, what ``gateway keys
generate --alg RS256`` makes) and an HS256 secret for HAProxy's other rows, the payload
files wrk rotates through (Adobe's sample push, 10-user messages: Adobe's default "Maximum
Users Per Request", and the larger batches), the gateway's configuration (built like
``gateway demo`` builds its own: an RFC 6749 client whose secret hash is in the YAML), and
bearer tokens minted with PyJWT in the gateway's own claim shape (RFC 9068: ``typ: at+jwt``,
``kid``, ``iss``, ``sub``, ``aud``, ``exp``, ``iat``, ``jti``, ``client_id``, ``scope``).
"""

from __future__ import annotations

import json
import random
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import jwt
import yaml
from cryptography.hazmat.primitives import serialization

from gateway.config.hashes import hash_secret
from gateway.oauth.keys import generate_key
from gateway.tools.certs import create_dev_certificates, write_private
from gateway.tools.payloads import make_payload_bytes

__all__ = ["AUDIENCE", "CLIENT_ID", "ISSUER", "SCOPE", "Fixtures", "PayloadSet", "prepare"]

ISSUER = "https://localhost:8443"
AUDIENCE = "partner-api"
CLIENT_ID = "aam-bench"
SCOPE = "segments:write"
SEED_PAYLOAD = Path(__file__).resolve().parents[1] / "tests" / "vectors" / "segment-payload.json"
_ROTATION = 4  # distinct bodies per batch size, so no layer sees one body over and over


@dataclass(frozen=True, slots=True)
class PayloadSet:
    """One payload column: its label, its body files and their mean size."""

    name: str
    users: int
    files: tuple[Path, ...]
    mean_bytes: int


@dataclass(frozen=True, slots=True)
class Fixtures:
    workdir: Path
    cert: Path
    key: Path
    pem: Path  # certificate chain + key in one file, as HAProxy wants it
    ca: Path
    es256_key: Path
    es256_public: Path
    es256_jwk: dict[str, str]
    rs256_key: Path
    rs256_public: Path
    hs256_secret: str
    client_secret: str
    payloads: tuple[PayloadSet, ...]
    delivery: str = "direct"  # the route's delivery in gateway_config (floor.py --spool)

    def gateway_config(self, *, workers: int | str, backend_url: str,
                       state: dict[str, str] | None = None) -> Path:
        """A gateway configuration like the demo's: port 0, ES256, the bench client; the
        ``state`` section given (Redis, bench/fleet.py) or an SQLite file of its own."""
        config = {
            "server": {"host": "127.0.0.1", "port": 0, "workers": workers,
                       # A pid file per process (bench/fleet.py runs one file twice).
                       "pid_file": "${GATEWAY_PID_FILE:-var/gateway-" + str(workers) + ".pid}",
                       "tls": {"cert_file": str(self.cert), "key_file": str(self.key)},
                       "admin": {"host": "127.0.0.1", "port": 0},
                       # wrk's connections all come from 127.0.0.1 (up to --connections 1000)
                       "max_connections_per_address": 4096},
            "tokens": {"issuer": ISSUER, "audience": AUDIENCE, "algorithm": "ES256",
                       "keys": [{"kid": "bench-1", "private_key_file": str(self.es256_key)}]},
            "clients": [{"client_id": CLIENT_ID, "secret_hash": hash_secret(self.client_secret),
                         "scopes": [SCOPE]}],
            "routes": [{"path": "/segments/aam", "methods": ["POST"], "upstream": backend_url,
                        "scope": SCOPE}],
            "state": state or {"path": str(self.workdir / f"gateway-{workers}.db")},
            "logging": {"format": "json", "level": "warning"},
        }
        if self.delivery != "direct":  # bench/floor.py --spool
            config["routes"][0]["delivery"] = self.delivery
            config["spool"] = {"path": str(self.workdir / f"spool-{workers}.db")}
        path = self.workdir / f"gateway-{workers}{'-shared' if state else ''}.yaml"
        path.write_text("# Written by bench/fixtures.py.\n" + yaml.safe_dump(config))
        return path

    def mint(self, alg: str, *, ttl: int = 3600, audience: str = AUDIENCE) -> str:
        """A bearer token in the gateway's claim shape, signed with ``alg``'s bench key."""
        now = int(time.time())
        claims = {"iss": ISSUER, "exp": now + ttl, "aud": audience, "sub": CLIENT_ID,
                  "client_id": CLIENT_ID, "iat": now, "jti": secrets.token_urlsafe(24),
                  "scope": SCOPE}
        headers = {"typ": "at+jwt", "kid": "bench-1"}
        if alg == "HS256":
            return jwt.encode(claims, self.hs256_secret, algorithm="HS256", headers=headers)
        key = self.rs256_key if alg == "RS256" else self.es256_key
        return jwt.encode(claims, key.read_bytes(), algorithm=alg, headers=headers)


def _payloads(workdir: Path, quick: bool) -> tuple[PayloadSet, ...]:
    folder = workdir / "payloads"
    folder.mkdir()
    sample = folder / "sample-push.json"
    sample.write_bytes(SEED_PAYLOAD.read_bytes())
    sets = [PayloadSet("sample push (1 user)", 1, (sample,), sample.stat().st_size)]
    # ~280 bytes per generated user: 10 users are ~3 KB, 360 users ~100 KB, 1,000 ~280 KB.
    sizes = ((10, "10 users"), (360, "100 KB"), (1000, "1,000 users"))
    for users, label in (s for s in sizes if not (quick and s[0] == 360)):
        rng = random.Random(users)
        files = []
        for index in range(_ROTATION):
            path = folder / f"users-{users}-{index}.json"
            path.write_bytes(make_payload_bytes(users, rng))
            files.append(path)
        mean = sum(p.stat().st_size for p in files) // len(files)
        sets.append(PayloadSet(f"{label} ({mean / 1000:.0f} KB)", users, tuple(files), mean))
    return tuple(sets)


def _public_pem(private_pem: Path, out: Path) -> Path:
    private = serialization.load_pem_private_key(private_pem.read_bytes(), password=None)
    out.write_bytes(private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return out


def prepare(workdir: Path, *, quick: bool) -> Fixtures:
    """Write certificates, keys and payloads into ``workdir``."""
    certs = workdir / "certs"
    create_dev_certificates(certs)
    pem = certs / "haproxy.pem"
    pem.write_bytes((certs / "server.crt").read_bytes() + (certs / "server.key").read_bytes())
    es256 = certs / "jwt-es256.pem"
    write_private(es256, generate_key("ES256"))
    private = serialization.load_pem_private_key(es256.read_bytes(), password=None)
    rs256 = certs / "jwt-rs256.pem"
    write_private(rs256, generate_key("RS256"))
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private))
    jwk.update({"kid": "bench-1", "alg": "ES256", "use": "sig"})
    return Fixtures(
        workdir=workdir, cert=certs / "server.crt", key=certs / "server.key", pem=pem,
        ca=certs / "ca.crt", es256_key=es256, es256_jwk=jwk,
        es256_public=_public_pem(es256, certs / "jwt-es256.pub.pem"),
        rs256_key=rs256, rs256_public=_public_pem(rs256, certs / "jwt-rs256.pub.pem"),
        hs256_secret=generate_key("HS256").decode(), client_secret=secrets.token_urlsafe(24),
        payloads=_payloads(workdir, quick),
    )
