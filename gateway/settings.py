"""The configuration (SPEC §4): one YAML file read once into frozen, typed objects.

``load(path)`` returns a ``Settings`` or raises ``ConfigError`` holding every problem with
its YAML path. Each stage receives only its own part (``settings.tokens``,
``settings.routes[i]``); nothing re-reads or re-validates the file per request.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from gateway.hashing import HashFormatError, PasswordHash, parse_hash
from gateway.yamlpath import ConfigError, Network, Reader, load_yaml

__all__ = [
    "AdminSettings",
    "ClientSettings",
    "ConfigError",
    "LoggingSettings",
    "RateLimitSettings",
    "RouteSettings",
    "ServerSettings",
    "Settings",
    "SignatureSettings",
    "SigningKeySettings",
    "SpoolSettings",
    "StateSettings",
    "TLSSettings",
    "TokenSettings",
    "UpstreamTLSSettings",
    "load",
    "load_text",
]

Algorithm = Literal["ES256", "RS256", "EdDSA", "HS256"]
ALGORITHMS: tuple[str, ...] = ("ES256", "RS256", "EdDSA", "HS256")
RESERVED_PREFIXES = ("/oauth2/", "/.well-known/")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_KEY_PREFIX = re.compile(r"[A-Za-z0-9_\-:.{}]{1,64}")


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


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8443
    workers: int = 1
    tls: TLSSettings
    http_port: int | None = None
    trusted_proxies: tuple[Network, ...] = ()
    max_body_bytes: int = 10 * 1024 * 1024
    admin: AdminSettings = field(default_factory=AdminSettings)


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


@dataclass(frozen=True, slots=True, kw_only=True)
class SignatureSettings:
    header: str = "X-Signature"
    algorithm: Literal["sha256", "sha1", "md5"] = "sha256"
    key: str = field(repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteSettings:
    path: str
    methods: tuple[str, ...] = ("POST",)
    upstreams: tuple[str, ...]
    scope: str | None = None
    content_type: str = "application/json"
    payload: Literal["aam-segments", "none"] = "aam-segments"
    timeout_seconds: float = 10.0
    forward_authorization: bool = False
    identity_headers: bool = True
    success_status: int | None = 200
    signature: SignatureSettings | None = None
    delivery: Literal["direct", "spool"] = "direct"


@dataclass(frozen=True, slots=True, kw_only=True)
class UpstreamTLSSettings:
    ca_file: Path | None = None
    client_cert_file: Path | None = None
    client_key_file: Path | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StateSettings:
    backend: Literal["sqlite", "redis"] = "sqlite"
    path: Path = Path("var/gateway.db")
    # The URL may embed a password: never in a repr, a log line or an error.
    url: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    ca_file: Path | None = None  # rediss://: verify the server against this CA
    key_prefix: str = "gateway:"  # several deployments may share one Redis


@dataclass(frozen=True, slots=True, kw_only=True)
class SpoolSettings:
    """SPEC §5.6: the store-and-forward queue of ``delivery: spool`` routes."""

    path: Path = Path("var/spool.db")  # its own SQLite file, next to state.path by default
    max_bytes: int = 1 << 30  # stored bytes (queued and dead letters); past it 503
    max_items: int = 100_000  # stored items (queued and dead letters); past it 503
    max_age_seconds: float = 86400.0  # undelivered this long after queueing: dead letter
    max_attempts: int = 30  # answered or timed-out tries (not refused connects): dead letter
    concurrency: int = 1  # deliveries in flight per route; 1 keeps arrival order exactly
    retry_initial_seconds: float = 1.0  # first backoff; doubles per attempt, with jitter
    retry_max_seconds: float = 60.0


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

    def summary(self) -> str:
        return (
            f"{self.source}: ok — https://{self.server.host}:{self.server.port}, "
            f"{self.server.workers} worker(s), {self.tokens.algorithm} keys "
            f"{', '.join(k.kid for k in self.tokens.keys)}, {len(self.clients)} client(s), "
            f"{len(self.routes)} route(s)"
        )


def load(path: str | os.PathLike[str], env: dict[str, str] | None = None) -> Settings:
    """Read and validate the YAML file at ``path``; raises ConfigError."""
    source = Path(path).resolve()
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{source}: file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{source}: cannot read: {exc.__class__.__name__}"]) from None
    return load_text(text, source, env)


def load_text(text: str, source: Path, env: dict[str, str] | None = None) -> Settings:
    tree = load_yaml(text, str(source))
    reader = Reader(base_dir=source.parent, env=dict(os.environ) if env is None else env)
    settings = _read_settings(reader, tree, source)
    if reader.errors:
        raise ConfigError(reader.errors)
    return settings


# -- sections ------------------------------------------------------------------------

def _read_settings(r: Reader, tree: Any, source: Path) -> Settings:
    top = r.mapping(tree, "", ("server", "tokens", "clients", "routes", "upstream_tls",
                               "state", "logging", "spool"))
    if not isinstance(tree, dict):
        r.errors[:] = [f"{source}: expected a YAML mapping at the top level"]
    server = _read_server(r, top.get("server"), "server")
    tokens = _read_tokens(r, top.get("tokens"), "tokens")
    client_items = r.items(top.get("clients"), "clients")
    clients = tuple(_read_client(r, v, p, tokens) for p, v in client_items)
    _unique(r, [(p, c.client_id) for (p, _), c in zip(r.items(top.get("clients"), "clients"),
                                                      clients, strict=True)], "client_id")
    routes = tuple(_read_route(r, v, p) for p, v in r.items(top.get("routes"), "routes"))
    _unique(r, [(p, rt.path) for (p, _), rt in zip(r.items(top.get("routes"), "routes"),
                                                   routes, strict=True)], "path")
    state = _read_state(r, top.get("state"), "state")
    return Settings(
        source=source,
        server=server,
        tokens=tokens,
        clients=clients,
        routes=routes,
        upstream_tls=_read_upstream_tls(r, top.get("upstream_tls"), "upstream_tls"),
        state=state,
        logging=_read_logging(r, top.get("logging"), "logging"),
        spool=_read_spool(r, top.get("spool"), "spool", state.path.parent, server),
    )


def _read_server(r: Reader, value: Any, path: str) -> ServerSettings:
    m = r.mapping(value, path, ("host", "port", "workers", "tls", "http_port",
                                "trusted_proxies", "max_body_bytes", "admin"))
    tls = r.mapping(m.get("tls"), f"{path}.tls", ("cert_file", "key_file", "min_version",
                                                   "client_ca_file"))
    admin = r.mapping(m.get("admin"), f"{path}.admin", ("host", "port"))
    workers_raw = r.interpolate(m.get("workers"), f"{path}.workers")
    if workers_raw == "auto":
        workers = os.cpu_count() or 1
    else:
        workers = r.integer(workers_raw, f"{path}.workers", default=1, minimum=1, maximum=256)
    http_port = m.get("http_port")
    return ServerSettings(
        host=r.string(m.get("host"), f"{path}.host", default="127.0.0.1"),
        port=r.integer(m.get("port"), f"{path}.port", default=8443, minimum=0, maximum=65535),
        workers=workers,
        tls=TLSSettings(
            cert_file=r.file(tls.get("cert_file", "certs/server.crt"), f"{path}.tls.cert_file",
                             check=_check_certificates, hint=" (run `gateway certs`)"),
            key_file=r.file(tls.get("key_file", "certs/server.key"), f"{path}.tls.key_file",
                            check=_check_private_key, hint=" (run `gateway certs`)"),
            min_version=r.string(tls.get("min_version"), f"{path}.tls.min_version",  # type: ignore[arg-type]
                                 default="1.2", choices=("1.2", "1.3")),
            client_ca_file=r.optional_file(tls.get("client_ca_file"),
                                           f"{path}.tls.client_ca_file", check=_check_certificates),
        ),
        http_port=None if http_port is None else r.integer(
            http_port, f"{path}.http_port", minimum=0, maximum=65535),
        trusted_proxies=r.networks(m.get("trusted_proxies"), f"{path}.trusted_proxies"),
        max_body_bytes=r.integer(m.get("max_body_bytes"), f"{path}.max_body_bytes",
                                 default=10 * 1024 * 1024, minimum=1024, maximum=1 << 30),
        admin=AdminSettings(
            host=r.string(admin.get("host"), f"{path}.admin.host", default="127.0.0.1"),
            port=r.integer(admin.get("port"), f"{path}.admin.port", default=9090,
                           minimum=0, maximum=65535),
        ),
    )


def _read_tokens(r: Reader, value: Any, path: str) -> TokenSettings:
    m = r.mapping(value, path, ("issuer", "audience", "ttl_seconds", "leeway_seconds",
                                "failed_auth_per_minute", "algorithm", "keys", "realm"))
    algorithm = r.string(m.get("algorithm"), f"{path}.algorithm", default="ES256",
                         choices=ALGORITHMS)
    keys: list[SigningKeySettings] = []
    for key_path, item in r.items(m.get("keys"), f"{path}.keys"):
        keys.append(_read_signing_key(r, item, key_path, algorithm))
    if not keys and not any(e.startswith(f"{path}.keys") for e in r.errors):
        r.fail(f"{path}.keys", "at least one key is required (`gateway keys generate`)")
    elif keys and not keys[0].can_sign:
        r.fail(f"{path}.keys[0]", "the first key signs, so it needs a private key or secret")
    _unique(r, [(f"{path}.keys[{i}]", k.kid) for i, k in enumerate(keys)], "kid")
    return TokenSettings(
        issuer=r.url(m.get("issuer", "https://localhost:8443"), f"{path}.issuer",
                     schemes=("https",)),
        audience=r.string(m.get("audience"), f"{path}.audience", default="partner-api"),
        ttl_seconds=r.integer(m.get("ttl_seconds"), f"{path}.ttl_seconds", default=3600,
                              minimum=60, maximum=86400),
        leeway_seconds=r.integer(m.get("leeway_seconds"), f"{path}.leeway_seconds", default=30,
                                 minimum=0, maximum=300),
        failed_auth_per_minute=r.integer(m.get("failed_auth_per_minute"),
                                         f"{path}.failed_auth_per_minute", default=10,
                                         minimum=1, maximum=100000),
        algorithm=algorithm,  # type: ignore[arg-type]
        keys=tuple(keys),
        realm=r.string(m.get("realm"), f"{path}.realm", default="gateway"),
    )


def _read_signing_key(r: Reader, value: Any, path: str, algorithm: str) -> SigningKeySettings:
    m = r.mapping(value, path, ("kid", "private_key_file", "public_key_file", "secret"))
    kid = r.string(m.get("kid"), f"{path}.kid")
    given = [k for k in ("private_key_file", "public_key_file", "secret") if m.get(k) is not None]
    if len(given) != 1:
        r.fail(path, "give exactly one of private_key_file, public_key_file, secret")
    private = public = None
    secret = None
    if algorithm == "HS256":
        if m.get("private_key_file") is not None or m.get("public_key_file") is not None:
            r.fail(path, "HS256 keys are a `secret`, not key files")
        if m.get("secret") is not None:
            secret = r.string(m.get("secret"), f"{path}.secret")
            if len(secret.encode()) < 32:
                r.fail(f"{path}.secret", "must be at least 32 bytes (RFC 7518 §3.2)")
    else:
        if m.get("secret") is not None:
            r.fail(f"{path}.secret", f"{algorithm} needs a key file, not a secret")
        if m.get("private_key_file") is not None:
            private = r.file(m["private_key_file"], f"{path}.private_key_file",
                             check=lambda p: _check_signing_key(p, algorithm, private=True),
                             hint=" (run `gateway keys generate`)")
        if m.get("public_key_file") is not None:
            public = r.file(m["public_key_file"], f"{path}.public_key_file",
                            check=lambda p: _check_signing_key(p, algorithm, private=False))
    return SigningKeySettings(kid=kid, private_key_file=private, public_key_file=public,
                              secret=secret)


def _read_client(r: Reader, value: Any, path: str, tokens: TokenSettings) -> ClientSettings:
    m = r.mapping(value, path, ("client_id", "secret_hash", "credential_hash", "scopes",
                                "allowed_cidrs", "rate_limit", "client_secret_post"))
    secret_hashes = _read_hashes(r, m.get("secret_hash"), f"{path}.secret_hash", None)
    credential_hashes = _read_hashes(r, m.get("credential_hash"), f"{path}.credential_hash",
                                     "sha256")
    if m.get("secret_hash") is None and m.get("credential_hash") is None:
        r.fail(path, "needs secret_hash, credential_hash or both")
    rate = m.get("rate_limit")
    rate_limit = None
    if rate is not None:
        rm = r.mapping(rate, f"{path}.rate_limit", ("requests_per_second", "burst"))
        rate_limit = RateLimitSettings(
            requests_per_second=r.number(rm.get("requests_per_second"),
                                         f"{path}.rate_limit.requests_per_second", positive=True),
            burst=r.integer(rm.get("burst"), f"{path}.rate_limit.burst", minimum=1),
        )
    return ClientSettings(
        client_id=r.string(m.get("client_id"), f"{path}.client_id"),
        secret_hashes=secret_hashes,
        credential_hashes=credential_hashes,
        scopes=r.string_list(m.get("scopes"), f"{path}.scopes"),
        allowed_cidrs=r.networks(m.get("allowed_cidrs"), f"{path}.allowed_cidrs"),
        rate_limit=rate_limit,
        client_secret_post=r.boolean(m.get("client_secret_post"), f"{path}.client_secret_post",
                                     default=False),
    )


def _read_hashes(r: Reader, value: Any, path: str, scheme: str | None) -> tuple[PasswordHash, ...]:
    result: list[PasswordHash] = []
    entries = [(path, value)] if isinstance(value, str) else r.items(value, path)
    for item_path, item in entries:
        text = r.string(item, item_path)
        try:
            parsed = parse_hash(text)
        except HashFormatError as exc:
            r.fail(item_path, f"{exc} (make one with `gateway hash-secret`)")
            continue
        if scheme is not None and parsed.scheme != scheme:
            r.fail(item_path, "must be a sha256$ lookup hash: an opaque credential names no "
                              "client, so it is found by its digest "
                              "(`gateway hash-secret --opaque`)")
            continue
        result.append(parsed)
    return tuple(result)


def _read_route(r: Reader, value: Any, path: str) -> RouteSettings:
    m = r.mapping(value, path, ("path", "methods", "upstream", "scope", "content_type",
                                "payload", "timeout_seconds", "forward_authorization",
                                "identity_headers", "success_status", "signature", "delivery"))
    route_path = r.string(m.get("path"), f"{path}.path")
    if route_path and not route_path.startswith("/"):
        r.fail(f"{path}.path", "must start with /")
    if route_path.startswith(RESERVED_PREFIXES):
        r.fail(f"{path}.path", "is reserved for the gateway's own endpoints")
    methods = tuple(m_.upper() for m_ in r.string_list(m.get("methods", ["POST"]),
                                                        f"{path}.methods", allow_scalar=True))
    for i, method in enumerate(methods):
        r.check(method in METHODS, f"{path}.methods[{i}]", "must be one of " + ", ".join(METHODS))
    r.check(bool(methods), f"{path}.methods", "must not be empty")
    upstream = m.get("upstream")
    upstream_items = [(f"{path}.upstream", upstream)] if not isinstance(upstream, list) else \
        r.items(upstream, f"{path}.upstream")
    upstreams = tuple(r.url(u, p) for p, u in upstream_items)
    r.check(bool(upstreams), f"{path}.upstream", "must not be empty")
    success = m.get("success_status", 200)
    signature = None
    if m.get("signature") is not None:
        sm = r.mapping(m["signature"], f"{path}.signature", ("header", "algorithm", "key"))
        signature = SignatureSettings(
            header=r.string(sm.get("header"), f"{path}.signature.header", default="X-Signature"),
            algorithm=r.string(sm.get("algorithm"), f"{path}.signature.algorithm",  # type: ignore[arg-type]
                               default="sha256", choices=("sha256", "sha1", "md5")),
            key=r.string(sm.get("key"), f"{path}.signature.key"),
        )
    delivery = r.string(m.get("delivery"), f"{path}.delivery", default="direct",
                        choices=("direct", "spool"))
    return RouteSettings(
        path=route_path,
        methods=methods,
        upstreams=upstreams,
        scope=r.optional_string(m.get("scope"), f"{path}.scope"),
        content_type=r.string(m.get("content_type"), f"{path}.content_type",
                              default="application/json").lower(),
        payload=r.string(m.get("payload"), f"{path}.payload", default="aam-segments",  # type: ignore[arg-type]
                         choices=("aam-segments", "none")),
        timeout_seconds=r.number(m.get("timeout_seconds"), f"{path}.timeout_seconds",
                                 default=10.0, positive=True, maximum=300),
        forward_authorization=r.boolean(m.get("forward_authorization"),
                                        f"{path}.forward_authorization", default=False),
        identity_headers=r.boolean(m.get("identity_headers"), f"{path}.identity_headers",
                                   default=True),
        success_status=None if success is None else r.integer(
            success, f"{path}.success_status", minimum=200, maximum=299),
        signature=signature,
        delivery=delivery,  # type: ignore[arg-type]
    )


def _read_upstream_tls(r: Reader, value: Any, path: str) -> UpstreamTLSSettings:
    m = r.mapping(value, path, ("ca_file", "client_cert_file", "client_key_file"))
    cert, key = m.get("client_cert_file"), m.get("client_key_file")
    if (cert is None) != (key is None):
        r.fail(path, "client_cert_file and client_key_file go together")
    return UpstreamTLSSettings(
        ca_file=r.optional_file(m.get("ca_file"), f"{path}.ca_file", check=_check_certificates),
        client_cert_file=r.optional_file(cert, f"{path}.client_cert_file",
                                         check=_check_certificates),
        client_key_file=r.optional_file(key, f"{path}.client_key_file", check=_check_private_key),
    )


def _read_state(r: Reader, value: Any, path: str) -> StateSettings:
    m = r.mapping(value, path, ("backend", "path", "url", "password", "ca_file", "key_prefix"))
    backend = r.string(m.get("backend"), f"{path}.backend", default="sqlite",
                       choices=("sqlite", "redis"))
    url = r.optional_string(m.get("url"), f"{path}.url")
    password = r.optional_string(m.get("password"), f"{path}.password")
    ca_file = r.optional_file(m.get("ca_file"), f"{path}.ca_file", check=_check_certificates)
    prefix = r.string(m.get("key_prefix"), f"{path}.key_prefix", default="gateway:")
    if backend == "redis":
        if url is None:
            r.fail(f"{path}.url", "is required when backend is redis")
        else:
            # Checked here rather than by r.url(), whose wording is for http(s) URLs.
            parts = urlsplit(url)
            if parts.scheme not in ("redis", "rediss") or not parts.hostname:
                r.fail(f"{path}.url", "must be a redis:// or rediss:// URL")
            r.check(ca_file is None or parts.scheme == "rediss", f"{path}.ca_file",
                    "applies to rediss:// URLs only")
        r.check(bool(_KEY_PREFIX.fullmatch(prefix)), f"{path}.key_prefix",
                "must be 1-64 characters of A-Z a-z 0-9 _ - : . { }")
    else:
        for key in ("url", "password", "ca_file", "key_prefix"):
            r.check(m.get(key) is None, f"{path}.{key}", "applies to backend: redis only")
    db_path = r.string(m.get("path"), f"{path}.path", default="var/gateway.db")
    return StateSettings(backend=backend,  # type: ignore[arg-type]
                         path=(r.base_dir / db_path).resolve(), url=url, password=password,
                         ca_file=ca_file, key_prefix=prefix)


def _read_spool(r: Reader, value: Any, path: str, state_dir: Path,
                server: ServerSettings) -> SpoolSettings:
    m = r.mapping(value, path, ("path", "max_bytes", "max_items", "max_age_seconds",
                                "max_attempts", "concurrency", "retry_initial_seconds",
                                "retry_max_seconds"))
    given = r.optional_string(m.get("path"), f"{path}.path")
    max_bytes = r.integer(m.get("max_bytes"), f"{path}.max_bytes", default=1 << 30,
                          minimum=1024, maximum=1 << 40)
    # A body the bound can never hold would be refused forever, and IRIS retries once.
    r.check(max_bytes >= server.max_body_bytes, f"{path}.max_bytes",
            "must be at least server.max_body_bytes")
    initial = r.number(m.get("retry_initial_seconds"), f"{path}.retry_initial_seconds",
                       default=1.0, positive=True, maximum=3600)
    most = r.number(m.get("retry_max_seconds"), f"{path}.retry_max_seconds", default=60.0,
                    positive=True, maximum=86400)
    r.check(most >= initial, f"{path}.retry_max_seconds",
            "must be at least retry_initial_seconds")
    return SpoolSettings(
        path=(r.base_dir / given if given else state_dir / "spool.db").resolve(),
        max_bytes=max_bytes,
        max_items=r.integer(m.get("max_items"), f"{path}.max_items", default=100_000,
                            minimum=1, maximum=100_000_000),
        max_age_seconds=r.number(m.get("max_age_seconds"), f"{path}.max_age_seconds",
                                 default=86400.0, positive=True, maximum=30 * 86400),
        max_attempts=r.integer(m.get("max_attempts"), f"{path}.max_attempts", default=30,
                               minimum=1, maximum=1_000_000),
        concurrency=r.integer(m.get("concurrency"), f"{path}.concurrency", default=1,
                              minimum=1, maximum=256),
        retry_initial_seconds=initial,
        retry_max_seconds=most,
    )


def _read_logging(r: Reader, value: Any, path: str) -> LoggingSettings:
    m = r.mapping(value, path, ("format", "level"))
    return LoggingSettings(
        format=r.string(m.get("format"), f"{path}.format", default="json",  # type: ignore[arg-type]
                        choices=("json", "text")),
        level=r.string(m.get("level"), f"{path}.level", default="info",  # type: ignore[arg-type]
                       choices=("debug", "info", "warning", "error")),
    )


def _unique(r: Reader, entries: list[tuple[str, str]], what: str) -> None:
    seen: dict[str, str] = {}
    for path, value in entries:
        if value and value in seen:
            r.fail(f"{path}.{what}", f"duplicate of {seen[value]}")
        seen.setdefault(value, path)


# -- file checks: each returns a reason or None ---------------------------------------

def _check_certificates(path: Path) -> str | None:
    try:
        certs = x509.load_pem_x509_certificates(path.read_bytes())
    except (ValueError, OSError):
        return f"not a PEM certificate file: {path}"
    return None if certs else f"no certificate in {path}"


def _check_private_key(path: Path) -> str | None:
    try:
        serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError, OSError):
        return f"not an unencrypted PEM private key: {path}"
    return None


_KEY_TYPES: dict[str, tuple[type, ...]] = {
    "ES256": (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey),
    "RS256": (rsa.RSAPrivateKey, rsa.RSAPublicKey),
    "EdDSA": (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey),
}


def _check_signing_key(path: Path, algorithm: str, *, private: bool) -> str | None:
    data = path.read_bytes()
    try:
        key: Any = (serialization.load_pem_private_key(data, password=None) if private
                    else serialization.load_pem_public_key(data))
    except (ValueError, TypeError, OSError):
        kind = "private" if private else "public"
        return f"not an unencrypted PEM {kind} key: {path}"
    if not isinstance(key, _KEY_TYPES[algorithm]):
        return f"is not a key for {algorithm}"
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) \
            and not isinstance(key.curve, ec.SECP256R1):
        return "ES256 needs a P-256 key"
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey) and key.key_size < 2048:
        return "RS256 needs an RSA key of at least 2048 bits"
    return None
