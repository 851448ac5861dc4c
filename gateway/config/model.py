"""The configuration: one YAML file read once into frozen, typed objects, one dataclass a section.

``load(path)`` returns a ``Settings`` or raises ``ConfigError`` holding every problem with
its YAML path. Each stage receives only its own part (``settings.tokens``,
``settings.routes[i]``); nothing re-reads or re-validates the file per request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from gateway.config.hashes import PasswordHash
from gateway.config.yamlpath import ConfigError, Network

__all__ = [
    "AdminSettings",
    "ClientSettings",
    "ConfigError",
    "LoggingSettings",
    "PayloadSchema",
    "RateLimitSettings",
    "RouteSettings",
    "SentinelSettings",
    "ServerSettings",
    "Settings",
    "SignatureSettings",
    "SigningKeySettings",
    "SpoolSettings",
    "StateSettings",
    "TLSSettings",
    "TokenSettings",
    "UpstreamTLSSettings",
]

Algorithm = Literal["ES256", "RS256", "EdDSA", "HS256"]
ALGORITHMS: tuple[str, ...] = ("ES256", "RS256", "EdDSA", "HS256")
RESERVED_PREFIXES = ("/oauth2/", "/.well-known/")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
# IRIS sends at most ~10 users a message (docs/adobe.md): 1 MiB holds ten users of ~900
# segments each, or a 3,000-user generated batch, and bounds what one request can cost.
MAX_BODY_BYTES = 1 << 20
# The bounds of every body limit, server.max_body_bytes and routes[].max_body_bytes alike.
BODY_BYTES_MIN, BODY_BYTES_MAX = 1024, 1 << 30
# The bounds of every token lifetime, tokens.ttl_seconds and clients[].ttl_seconds alike:
# 24 h, the least Adobe Experience Platform recommends, is the most.
TTL_MIN_SECONDS, TTL_MAX_SECONDS = 60, 86400
KEY_PREFIX = re.compile(r"[A-Za-z0-9_\-:.{}]{1,64}")


@dataclass(frozen=True, slots=True, kw_only=True)
class TLSSettings:
    cert_file: Path
    key_file: Path
    min_version: Literal["1.2", "1.3"] = "1.2"
    client_ca_file: Path | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AdminSettings:
    host: str = "127.0.0.1"
    port: int = 9090
    # Names besides its own address, localhost and ``host`` that the admin listener answers
    # in ``Host`` (serve/admin_guard.py): what Prometheus or a load balancer calls it.
    hosts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8443
    workers: int = 1
    tls: TLSSettings
    http_port: int | None = None
    trusted_proxies: tuple[Network, ...] = ()
    max_body_bytes: int = MAX_BODY_BYTES
    admin: AdminSettings = field(default_factory=AdminSettings)
    # Locked while a gateway runs: a second one with the same file refuses to start, and
    # `gateway reload` / `gateway stop` find the running one through it.
    pid_file: Path = Path("var/gateway.pid")
    max_connections_per_address: int = 256


@dataclass(frozen=True, slots=True, kw_only=True)
class SigningKeySettings:
    kid: str
    private_key_file: Path | None = None
    public_key_file: Path | None = None
    secret: str | None = field(default=None, repr=False)

    @property
    def can_sign(self) -> bool:
        return self.private_key_file is not None or self.secret is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenSettings:
    issuer: str = "https://localhost:8443"
    audience: str = "partner-api"
    ttl_seconds: int = 3600
    leeway_seconds: int = 30
    failed_auth_per_minute: int = 10
    algorithm: Algorithm = "ES256"
    keys: tuple[SigningKeySettings, ...]
    realm: str = "gateway"


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimitSettings:
    requests_per_second: float
    burst: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientSettings:
    client_id: str
    secret_hashes: tuple[PasswordHash, ...] = field(default=(), repr=False)
    credential_hashes: tuple[PasswordHash, ...] = field(default=(), repr=False)
    scopes: tuple[str, ...] = ()
    allowed_cidrs: tuple[Network, ...] = ()
    rate_limit: RateLimitSettings | None = None
    client_secret_post: bool = False
    # The lifetime of this client's tokens; None: tokens.ttl_seconds. Adobe Experience
    # Platform recommends tokens that live at least 24 h, IRIS is served well by one hour.
    ttl_seconds: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SignatureSettings:
    """Adobe's request signature (docs/adobe.md): an HMAC any of ``keys`` may have made."""

    header: str = "X-Signature"
    # HmacSHA1 is the default of Adobe's tool ("Use SHA1 unless the customer prefers otherwise").
    algorithm: Literal["sha1", "sha256", "md5"] = "sha1"
    keys: tuple[str, ...] = field(repr=False)  # any may match: a key rotation drops nothing


@dataclass(frozen=True, slots=True, kw_only=True)
class PayloadSchema:
    """A route's JSON Schema (draft 2020-12), checked when the file was loaded; the payload
    stage compiles ``text`` once per configuration."""

    path: Path
    text: str = field(repr=False)


PayloadProfile = Literal["aam-segments", "aam-segments-strict", "none", "schema"]
PAYLOAD_PROFILES: tuple[str, ...] = ("aam-segments", "aam-segments-strict", "none")
Delivery = Literal["direct", "spool", "fallback"]
# IRIS counts an answer only within 3 s; a direct route's backend gets less than that.
DIRECT_TIMEOUT_SECONDS = 2.5
# Spool deliveries are not waited for by IRIS: the backend may take its time.
SPOOL_TIMEOUT_SECONDS = 10.0
IRIS_DEADLINE_SECONDS = 3.0


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteSettings:
    path: str
    methods: tuple[str, ...] = ("POST",)
    upstreams: tuple[str, ...]
    scope: str | None = None
    content_type: str = "application/json"
    auth: Literal["bearer", "signature"] = "bearer"
    payload: PayloadProfile = "aam-segments"
    payload_schema: PayloadSchema | None = None  # set when ``payload`` is "schema"
    payload_mode: Literal["enforce", "report"] = "enforce"
    timeout_seconds: float = DIRECT_TIMEOUT_SECONDS
    forward_authorization: bool = False
    identity_headers: bool = True
    success_status: int | None = 200
    signature: SignatureSettings | None = None
    delivery: Delivery = "direct"
    spool_after_seconds: float = 2.0  # fallback: the backend's time before the push is spooled
    # The largest body of this route; None: server.max_body_bytes. AEP batches of
    # 10,000 profiles run to several MB where an IRIS push of 10 users is a few KB.
    max_body_bytes: int | None = None

    # Lower-case names forwarded although they could impersonate the gateway (forward/headers.py).
    pass_headers: tuple[str, ...] = ()

    @property
    def spools(self) -> bool:
        """Whether pushes of this route may be stored (spool and fallback): its backend
        being away loses nothing, and the spool delivers what waits."""
        return self.delivery != "direct"

    def body_limit(self, server: ServerSettings) -> int:
        """The body bound of this route: its own, else the server's. Read once, when the
        route's handler is built, never per request."""
        return self.max_body_bytes if self.max_body_bytes is not None else server.max_body_bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class UpstreamTLSSettings:
    ca_file: Path | None = None
    client_cert_file: Path | None = None
    client_key_file: Path | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SentinelSettings:
    """``state.sentinel`` / ``spool.sentinel`` (``config/redis.py`` reads it)."""

    master_name: str
    nodes: tuple[tuple[str, int], ...]
    username: str | None = None
    # Secrets: never in a repr, a log line or an error.
    password: str | None = field(default=None, repr=False)
    sentinel_password: str | None = field(default=None, repr=False)
    ca_file: Path | None = None  # TLS to the Sentinels and the primary, verified against it
    db: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class StateSettings:
    backend: Literal["sqlite", "redis"] = "sqlite"
    path: Path = Path("var/gateway.db")
    # The URL may embed a password: never in a repr, a log line or an error.
    url: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    ca_file: Path | None = None  # rediss://: verify the server against this CA
    key_prefix: str = "gateway:"  # several deployments may share one Redis
    sentinel: SentinelSettings | None = None  # in place of url: the primary the Sentinels name


@dataclass(frozen=True, slots=True, kw_only=True)
class SpoolSettings:
    """docs/operations.md: the store-and-forward queue of ``delivery: spool`` routes."""

    backend: Literal["sqlite", "redis"] = "sqlite"  # redis: Redis Streams, shared by the fleet
    # sqlite: the queue; redis: where pushes go while Redis cannot take them (the fallback)
    path: Path = Path("var/spool.db")  # its own SQLite file, next to state.path by default
    max_bytes: int = 1 << 30  # stored bytes (queued and dead letters); past it 503
    max_items: int = 100_000  # stored items (queued and dead letters); past it 503
    max_age_seconds: float = 86400.0  # undelivered this long after queueing: dead letter
    max_attempts: int = 30  # answered or timed-out tries (not refused connects): dead letter
    concurrency: int = 1  # deliveries in flight per route; 1 keeps arrival order exactly
    retry_initial_seconds: float = 1.0  # first backoff; doubles per attempt, with jitter
    retry_max_seconds: float = 60.0
    # backend: redis. The URL may embed a password: never in a repr, a log line or an error.
    url: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    ca_file: Path | None = None  # rediss://: verify the server against this CA
    key_prefix: str = "gateway:"  # the streams are <prefix>spool:...
    sentinel: SentinelSettings | None = None  # in place of url: the primary the Sentinels name
    min_replicas: int = 0  # replicas that must hold a push (WAIT) before its 200


@dataclass(frozen=True, slots=True, kw_only=True)
class LoggingSettings:
    format: Literal["json", "text"] = "json"
    level: Literal["debug", "info", "warning", "error"] = "info"


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    source: Path
    server: ServerSettings
    tokens: TokenSettings
    clients: tuple[ClientSettings, ...] = ()
    routes: tuple[RouteSettings, ...] = ()
    upstream_tls: UpstreamTLSSettings = field(default_factory=UpstreamTLSSettings)
    state: StateSettings = field(default_factory=StateSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    spool: SpoolSettings = field(default_factory=SpoolSettings)
    warnings: tuple[str, ...] = ()  # ``path: reason`` each; see ``Reader.warn``

    def summary(self) -> str:
        return (
            f"{self.source}: ok — https://{self.server.host}:{self.server.port}, "
            f"{self.server.workers} worker(s), {self.tokens.algorithm} keys "
            f"{', '.join(k.kid for k in self.tokens.keys)}, {len(self.clients)} client(s), "
            f"{len(self.routes)} route(s)"
        )
