"""TLS contexts for the public listener (docs/security.md).

Cipher suites follow Mozilla's "intermediate" server-side configuration (version 5.7):
TLS 1.2 with forward-secret AEAD suites only, TLS 1.3 suites as OpenSSL ships them.
"""

from __future__ import annotations

import ssl

from gateway.config import TLSSettings

__all__ = ["INTERMEDIATE_CIPHERS", "server_context"]

# Mozilla intermediate, TLS 1.2 part; TLS 1.3 suites are not configurable here and
# OpenSSL's defaults are exactly Mozilla's list.
INTERMEDIATE_CIPHERS = ":".join(
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "DHE-RSA-AES128-GCM-SHA256",
        "DHE-RSA-AES256-GCM-SHA384",
        "DHE-RSA-CHACHA20-POLY1305",
    )
)

_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def server_context(tls: TLSSettings) -> ssl.SSLContext:
    """A server context for ``tls``; files were checked when the config was loaded."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # SECURITY: TLS 1.0 and 1.1 are refused (RFC 8996); 1.3 when the config says so.
    context.minimum_version = _VERSIONS[tls.min_version]
    context.set_ciphers(INTERMEDIATE_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION  # SECURITY: CRIME
    context.options |= ssl.OP_NO_RENEGOTIATION
    context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    context.set_alpn_protocols(["http/1.1"])
    if tls.client_ca_file is not None:
        context.load_verify_locations(cafile=str(tls.client_ca_file))
        context.verify_mode = ssl.CERT_REQUIRED
    return context
