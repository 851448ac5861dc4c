"""Reading the file: ``load(path)`` returns a ``Settings`` or raises ``ConfigError`` holding
every problem with its YAML path. The sections are read by their own modules; the small
ones (upstream TLS, state, spool, logging) are here.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gateway.config.clients import read_client
from gateway.config.crosscheck import check_issuer
from gateway.config.listener import check_certificates, check_private_key, read_server
from gateway.config.model import (
    KEY_PREFIX,
    LoggingSettings,
    SentinelSettings,
    ServerSettings,
    Settings,
    SpoolSettings,
    StateSettings,
    UpstreamTLSSettings,
)
from gateway.config.redis import read_sentinel
from gateway.config.routes import read_route
from gateway.config.tokens import read_tokens
from gateway.config.yamlpath import ConfigError, Reader, load_yaml, unique


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
    return dataclasses.replace(settings, warnings=tuple(reader.warnings))

# -- sections ------------------------------------------------------------------------

def _read_settings(r: Reader, tree: Any, source: Path) -> Settings:
    top = r.mapping(tree, "", ("server", "tokens", "clients", "routes", "upstream_tls",
                               "state", "logging", "spool"))
    if not isinstance(tree, dict):
        r.errors[:] = [f"{source}: expected a YAML mapping at the top level"]
    server = read_server(r, top.get("server"), "server")
    tokens = read_tokens(r, top.get("tokens"), "tokens")
    check_issuer(r, server, tokens)
    client_items = r.items(top.get("clients"), "clients")
    clients = tuple(read_client(r, v, p, tokens) for p, v in client_items)
    unique(r, [(p, c.client_id) for (p, _), c in zip(r.items(top.get("clients"), "clients"),
                                                      clients, strict=True)], "client_id")
    routes = tuple(read_route(r, v, p) for p, v in r.items(top.get("routes"), "routes"))
    unique(r, [(p, rt.path) for (p, _), rt in zip(r.items(top.get("routes"), "routes"),
                                                   routes, strict=True)], "path")
    state = _read_state(r, top.get("state"), "state")
    spool = _read_spool(r, top.get("spool"), "spool", state, server)
    for i, route in enumerate(routes):
        # A body the spool can never hold would be refused forever (as for the server's).
        r.check(not route.spools or route.body_limit(server) <= spool.max_bytes,
                f"routes[{i}].max_body_bytes", "must be at most spool.max_bytes")
    return Settings(
        source=source,
        server=server,
        tokens=tokens,
        clients=clients,
        routes=routes,
        upstream_tls=_read_upstream_tls(r, top.get("upstream_tls"), "upstream_tls"),
        state=state,
        logging=_read_logging(r, top.get("logging"), "logging"),
        spool=spool,
    )

def _read_upstream_tls(r: Reader, value: Any, path: str) -> UpstreamTLSSettings:
    m = r.mapping(value, path, ("ca_file", "client_cert_file", "client_key_file"))
    cert, key = m.get("client_cert_file"), m.get("client_key_file")
    if (cert is None) != (key is None):
        r.fail(path, "client_cert_file and client_key_file go together")
    return UpstreamTLSSettings(
        ca_file=r.optional_file(m.get("ca_file"), f"{path}.ca_file", check=check_certificates),
        client_cert_file=r.optional_file(cert, f"{path}.client_cert_file",
                                         check=check_certificates),
        client_key_file=r.optional_file(key, f"{path}.client_key_file", check=check_private_key),
    )

def _check_redis_url(r: Reader, url: str | None, ca_file: Path | None, path: str,
                     sentinel: SentinelSettings | None = None) -> None:
    """A ``redis://`` or ``rediss://`` URL with a host, or a ``sentinel`` block, not both;
    ``ca_file`` for ``rediss://`` only."""
    if sentinel is not None:
        r.check(url is None, f"{path}.url", "goes with sentinel: give one of them")
        return
    if url is None:
        r.fail(f"{path}.url", "is required when backend is redis (or sentinel: instead)")
        return
    # Checked here rather than by r.url(), whose wording is for http(s) URLs.
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        r.fail(f"{path}.url", "must be a redis:// or rediss:// URL")
    r.check(ca_file is None or parts.scheme == "rediss", f"{path}.ca_file",
            "applies to rediss:// URLs only")

def _check_prefix(r: Reader, prefix: str, path: str) -> None:
    r.check(bool(KEY_PREFIX.fullmatch(prefix)), f"{path}.key_prefix",
            "must be 1-64 characters of A-Z a-z 0-9 _ - : . { }")

def _read_state(r: Reader, value: Any, path: str) -> StateSettings:
    m = r.mapping(value, path, ("backend", "path", "url", "password", "ca_file", "key_prefix",
                                "sentinel"))
    backend = r.choice(m.get("backend"), f"{path}.backend", ("sqlite", "redis"),
                       default="sqlite")
    url = r.optional_string(m.get("url"), f"{path}.url")
    sentinel = read_sentinel(r, m.get("sentinel"), f"{path}.sentinel")
    password = r.optional_string(m.get("password"), f"{path}.password")
    ca_file = r.optional_file(m.get("ca_file"), f"{path}.ca_file", check=check_certificates)
    prefix = r.string(m.get("key_prefix"), f"{path}.key_prefix", default="gateway:")
    if backend == "redis":
        _check_redis_url(r, url, ca_file, path, sentinel)
        _check_prefix(r, prefix, path)
    else:
        for key in ("url", "password", "ca_file", "key_prefix", "sentinel"):
            r.check(m.get(key) is None, f"{path}.{key}", "applies to backend: redis only")
    db_path = r.string(m.get("path"), f"{path}.path", default="var/gateway.db")
    return StateSettings(backend=backend or "sqlite",  # type: ignore[arg-type]
                         path=(r.state_dir / db_path).resolve(), url=url, password=password,
                         ca_file=ca_file, key_prefix=prefix, sentinel=sentinel)

_SPOOL_REDIS_KEYS = ("url", "password", "ca_file", "key_prefix", "min_replicas", "sentinel")

def _read_spool(r: Reader, value: Any, path: str, state: StateSettings,
                server: ServerSettings) -> SpoolSettings:
    m = r.mapping(value, path, ("backend", "path", "max_bytes", "max_items", "max_age_seconds",
                                "max_attempts", "concurrency", "retry_initial_seconds",
                                "retry_max_seconds", *_SPOOL_REDIS_KEYS))
    backend = r.string(m.get("backend"), f"{path}.backend", default="sqlite",
                       choices=("sqlite", "redis"))
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
    url = r.optional_string(m.get("url"), f"{path}.url")
    sentinel = read_sentinel(r, m.get("sentinel"), f"{path}.sentinel")
    password = r.optional_string(m.get("password"), f"{path}.password")
    ca_file = r.optional_file(m.get("ca_file"), f"{path}.ca_file", check=check_certificates)
    prefix = r.optional_string(m.get("key_prefix"), f"{path}.key_prefix")
    min_replicas = r.integer(m.get("min_replicas"), f"{path}.min_replicas", default=0,
                             minimum=0, maximum=16)
    if backend == "redis":
        if url is None and sentinel is None and state.backend == "redis":
            # The state's Redis (its URL or its Sentinels), with its credentials, unless the
            # spool names its own.
            url, password, ca_file = state.url, state.password, state.ca_file
            sentinel = state.sentinel
            prefix = prefix if prefix is not None else state.key_prefix
        _check_redis_url(r, url, ca_file, path, sentinel)
        _check_prefix(r, prefix or "gateway:", path)
    else:
        for key in _SPOOL_REDIS_KEYS:
            r.check(m.get(key) is None, f"{path}.{key}", "applies to backend: redis only")
    return SpoolSettings(
        backend=backend,  # type: ignore[arg-type]
        path=(r.state_dir / given if given else state.path.parent / "spool.db").resolve(),
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
        url=url, password=password, ca_file=ca_file, key_prefix=prefix or "gateway:",
        min_replicas=min_replicas, sentinel=sentinel,
    )

def _read_logging(r: Reader, value: Any, path: str) -> LoggingSettings:
    m = r.mapping(value, path, ("format", "level"))
    return LoggingSettings(
        format=r.string(m.get("format"), f"{path}.format", default="json",  # type: ignore[arg-type]
                        choices=("json", "text")),
        level=r.string(m.get("level"), f"{path}.level", default="info",  # type: ignore[arg-type]
                       choices=("debug", "info", "warning", "error")),
    )
