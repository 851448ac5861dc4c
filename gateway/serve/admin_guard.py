"""The admin listener's own guards (docs/security.md, "The admin listener"): a ``Host``
allow-list against DNS rebinding, and the public listener's connection guards with a small
cap of their own.

The admin listener serves plain HTTP without authentication, so it relies on being reached
only from where it is bound. A DNS-rebinding page breaks that: the attacker's name first
resolves to the attacker, then to this listener's address, and the victim's browser reads
``/status.json`` and ``/metrics`` as same-origin. Such a request always carries the
attacker's name in ``Host``, so the listener answers only a ``Host`` naming it:

* the address the connection arrived on (``Host: 10.0.1.21:9090`` from a scraper that
  uses the address; with a wildcard bind, whichever local address was dialled),
* ``localhost``, ``server.admin.host``, and the names listed in ``server.admin.hosts``.

Anything else (another name, another address, an empty ``Host``) is ``421 Misdirected
Request`` (RFC 9110 §15.5.20) with the JSON error body, before any handler runs. A request
with no ``Host`` at all (HTTP/1.0: HAProxy's health check) is answered: no browser sends one.

Connections go through ``guards.GuardedAppRunner`` with ``ADMIN_LIMITS``: ``Server:
gateway`` (never aiohttp's version), JSON parse errors, header and body deadlines, and at
most ``ADMIN_LIMITS.max_connections`` connections, the oldest idle one closed for a new one
and a new one refused ``503`` when none is idle, so a flood of connections to the admin
port costs a bounded number of descriptors.
"""

from __future__ import annotations

import ipaddress
import logging
from urllib.parse import urlsplit

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from gateway.config import AdminSettings
from gateway.errors import MisdirectedRequestError
from gateway.serve.guards import ConnectionLimits, GuardedAppRunner

__all__ = ["ADMIN_LIMITS", "admin_runner", "host_guard"]

log = logging.getLogger("gateway.admin")

# Prometheus, a load balancer's health checks and an operator's browser need a handful;
# 64 leaves room for several scrapers and tabs.
ADMIN_LIMITS = ConnectionLimits(header_seconds=10.0, body_seconds=10.0, max_connections=64,
                                max_connections_per_address=64)


def _host_name(value: str | None) -> str | None:
    """The host part of a ``Host`` value, lower-cased, without port or brackets."""
    if not value:
        return None
    try:
        return urlsplit(f"//{value}").hostname or None
    except ValueError:  # "[::1", a port that is no number
        return None


def _own_address(request: web.BaseRequest) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    transport = request.transport
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    if not isinstance(sockname, tuple) or not sockname:
        return None
    try:
        return ipaddress.ip_address(str(sockname[0]).partition("%")[0])
    except ValueError:
        return None


def host_guard(admin: AdminSettings) -> Middleware:
    """Refuse ``421`` a request whose ``Host`` does not name this listener."""
    names = frozenset({"localhost", admin.host.lower().strip("[]"), *admin.hosts})

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        value = request.headers.get(hdrs.HOST)
        if value is None:
            # HTTP/1.0 without Host: HAProxy's `option httpchk`, curl -0. A browser, and so
            # a rebinding page, always sends one.
            return await handler(request)
        name = _host_name(value)
        if name is not None and name not in names:
            try:
                literal = ipaddress.ip_address(name)
            except ValueError:
                literal = None
            if literal is None or literal != _own_address(request):
                name = None
        if name is None:
            # Only the fact is logged: the Host value is the caller's choice.
            log.info("admin request under a foreign Host refused",
                     extra={"reason_id": "admin_foreign_host"})
            raise MisdirectedRequestError()
        return await handler(request)

    return guard


def admin_runner(app: web.Application) -> web.AppRunner:
    """The admin app's runner, guarded with ``ADMIN_LIMITS``."""
    return GuardedAppRunner(app, limits=ADMIN_LIMITS, access_log=None, shutdown_timeout=5.0)
