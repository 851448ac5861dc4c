"""The ``server`` section: listeners, TLS, admin, limits; certificate and key files are
parsed here, so a bad file fails at load, not at the first handshake.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.config.hints import shell_path
from gateway.config.model import (
    MAX_BODY_BYTES,
    AdminSettings,
    ServerSettings,
    TLSSettings,
)
from gateway.config.yamlpath import ConfigError, Reader, load_yaml

DEFAULT_PID_FILE = "var/gateway.pid"


def read_server(r: Reader, value: Any, path: str) -> ServerSettings:
    m = r.mapping(value, path, ("host", "port", "workers", "tls", "http_port",
                                "trusted_proxies", "max_body_bytes", "admin", "pid_file",
                                "max_connections_per_address"))
    tls = r.mapping(m.get("tls"), f"{path}.tls", ("cert_file", "key_file", "min_version",
                                                   "client_ca_file"))
    admin = r.mapping(m.get("admin"), f"{path}.admin", ("host", "port", "hosts"))
    workers_raw = r.interpolate(m.get("workers"), f"{path}.workers")
    if workers_raw == "auto":
        workers = os.cpu_count() or 1
    elif isinstance(workers_raw, str) and not workers_raw.strip().lstrip("-").isdigit():
        r.fail(f"{path}.workers", "expected an integer 1-256 or \"auto\"")
        workers = 1
    else:
        workers = r.integer(workers_raw, f"{path}.workers", default=1, minimum=1, maximum=256)
    http_port = m.get("http_port")
    cert_given = tls.get("cert_file", "certs/server.crt")
    key_given = tls.get("key_file", "certs/server.key")
    return ServerSettings(
        host=r.string(m.get("host"), f"{path}.host", default="127.0.0.1"),
        port=r.integer(m.get("port"), f"{path}.port", default=8443, minimum=0, maximum=65535),
        workers=workers,
        tls=TLSSettings(
            cert_file=r.file(cert_given, f"{path}.tls.cert_file",
                             check=check_certificates, hint=_certs_hint(r, cert_given)),
            key_file=r.file(key_given, f"{path}.tls.key_file",
                            check=check_private_key, hint=_certs_hint(r, key_given)),
            min_version=r.string(tls.get("min_version"), f"{path}.tls.min_version",  # type: ignore[arg-type]
                                 default="1.2", choices=("1.2", "1.3")),
            client_ca_file=r.optional_file(tls.get("client_ca_file"),
                                           f"{path}.tls.client_ca_file", check=check_certificates),
        ),
        http_port=None if http_port is None else r.integer(
            http_port, f"{path}.http_port", minimum=0, maximum=65535),
        trusted_proxies=r.networks(m.get("trusted_proxies"), f"{path}.trusted_proxies"),
        max_body_bytes=r.integer(m.get("max_body_bytes"), f"{path}.max_body_bytes",
                                 default=MAX_BODY_BYTES, minimum=1024, maximum=1 << 30),
        admin=AdminSettings(
            host=r.string(admin.get("host"), f"{path}.admin.host", default="127.0.0.1"),
            port=r.integer(admin.get("port"), f"{path}.admin.port", default=9090,
                           minimum=0, maximum=65535),
            hosts=_admin_hosts(r, admin.get("hosts"), f"{path}.admin.hosts"),
        ),
        pid_file=pid_file(r, m.get("pid_file"), f"{path}.pid_file"),
        max_connections_per_address=r.integer(
            m.get("max_connections_per_address"), f"{path}.max_connections_per_address",
            default=256, minimum=1, maximum=1 << 20),
    )

_HOST_NAME = re.compile(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?|\[[0-9a-f:.]+\]|[0-9a-f:.]+")


def _admin_hosts(r: Reader, value: Any, path: str) -> tuple[str, ...]:
    """``server.admin.hosts``: host names (or addresses) without a port, lower-cased."""
    names = r.string_list(value, path)
    for i, name in enumerate(names):
        if not _HOST_NAME.fullmatch(name.lower()):
            r.fail(f"{path}[{i}]", "must be a host name or an IP address, without a port")
    return tuple(dict.fromkeys(name.lower().strip("[]") for name in names))


def pid_file(r: Reader, value: Any, path: str) -> Path:
    """``server.pid_file``, resolved against ``$GATEWAY_STATE_DIR`` when set, else the
    configuration file's directory."""
    given = r.string(value, path, default=DEFAULT_PID_FILE)
    try:
        return (r.state_dir / os.path.expanduser(given)).resolve()
    except (OSError, ValueError):
        r.fail(path, "is not a usable path")
        return r.state_dir / DEFAULT_PID_FILE

def pid_file_of(config: Path) -> Path:
    """The pid file a configuration names, even when the rest of the file is invalid: what
    ``gateway stop`` needs to find a gateway started from an older, valid file. Raises
    ConfigError only when the YAML cannot be parsed or the key itself is wrong."""
    source = config.resolve()
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{source}: file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{source}: cannot read: {exc.__class__.__name__}"]) from None
    tree = load_yaml(text, str(source))
    r = Reader(base_dir=source.parent)
    server = tree.get("server") if isinstance(tree, dict) else None
    value = server.get("pid_file") if isinstance(server, dict) else None
    found = pid_file(r, value, "server.pid_file")
    if r.errors:
        raise ConfigError(r.errors)
    return found

def _certs_hint(r: Reader, given: Any) -> str:
    """The whole command that writes a development chain where the file names it."""
    if not isinstance(given, str) or not given or "${" in given:
        return " (run `gateway certs`)"
    name = Path(given).name
    if name not in ("server.crt", "server.key"):
        return " (`gateway certs --dir DIR` writes a development chain as DIR/server.crt " \
               "and DIR/server.key)"
    directory = shell_path(r.base_dir, str(Path(given).parent))
    return f" (run `gateway certs --dir {directory}`)"

def check_certificates(path: Path) -> str | None:
    try:
        certs = x509.load_pem_x509_certificates(path.read_bytes())
    except (ValueError, OSError):
        return f"not a PEM certificate file: {path}"
    return None if certs else f"no certificate in {path}"

def check_private_key(path: Path) -> str | None:
    try:
        serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError, OSError):
        return f"not an unencrypted PEM private key: {path}"
    return None


