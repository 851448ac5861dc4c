"""The ``server`` section: listeners, TLS, admin, limits; certificate and key files are
parsed here, so a bad file fails at load, not at the first handshake.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.config.model import (
    AdminSettings,
    ServerSettings,
    TLSSettings,
)
from gateway.config.yamlpath import Reader


def read_server(r: Reader, value: Any, path: str) -> ServerSettings:
    m = r.mapping(value, path, ("host", "port", "workers", "tls", "http_port",
                                "trusted_proxies", "max_body_bytes", "admin",
                                "max_connections_per_address"))
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
                             check=check_certificates, hint=" (run `gateway certs`)"),
            key_file=r.file(tls.get("key_file", "certs/server.key"), f"{path}.tls.key_file",
                            check=check_private_key, hint=" (run `gateway certs`)"),
            min_version=r.string(tls.get("min_version"), f"{path}.tls.min_version",  # type: ignore[arg-type]
                                 default="1.2", choices=("1.2", "1.3")),
            client_ca_file=r.optional_file(tls.get("client_ca_file"),
                                           f"{path}.tls.client_ca_file", check=check_certificates),
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
        max_connections_per_address=r.integer(
            m.get("max_connections_per_address"), f"{path}.max_connections_per_address",
            default=256, minimum=1, maximum=1 << 20),
    )

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


