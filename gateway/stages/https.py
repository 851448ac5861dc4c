"""Stage 1 of ``pipeline``: HTTPS is required (docs/security.md; RFC 6749 §3.1, §3.2;
Adobe's "SSL is mandatory").

HTTPS is read from the transport. ``X-Forwarded-Proto: https`` counts only when the peer is
a configured trusted proxy and the header appears exactly once (as Kong's ``check_https``),
so a caller cannot claim TLS it did not use. The plain ``http_port`` listener serves the same
application, so every request it takes from anyone else is refused here, before any header
holding a credential is read.
"""

from __future__ import annotations

from aiohttp import web

from gateway.config.yamlpath import Network
from gateway.errors import InsecureTransportError
from gateway.peer import is_trusted_proxy

__all__ = ["HSTS", "check_https"]

# RFC 6797: one year, subdomains included, on every response sent over TLS (set by the
# guarded connection handler, serve/guards.py, which every answer passes).
HSTS = "max-age=31536000; includeSubDomains"


def check_https(request: web.Request, trusted: tuple[Network, ...]) -> None:
    """Raise ``InsecureTransportError`` (403) unless the request came over this process's
    TLS, or a proxy in ``trusted`` says once that it did."""
    transport = request.transport
    if transport is not None and transport.get_extra_info("sslcontext") is not None:
        return
    if is_trusted_proxy(request.remote, trusted):
        # SECURITY: exactly one X-Forwarded-Proto, from a trusted peer only.
        values = request.headers.getall("X-Forwarded-Proto", ())
        if len(values) == 1 and values[0].strip().lower() == "https":
            return
    raise InsecureTransportError()
