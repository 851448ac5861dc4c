"""Checks that span sections and only warn: values that load but are probably not meant.

``tokens.issuer`` is the address clients are told to fetch tokens from (the RFC 8414
metadata is built from it) and the ``iss`` every token must carry. When it names a port or
a host the public listener cannot be reached at, clients that follow the metadata go
elsewhere. A front proxy (a load balancer on 443 forwarding to 8443) makes any pair valid;
``server.trusted_proxies`` being set is the sign of one, so no warning is given then.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from gateway.config.model import ServerSettings, TokenSettings
from gateway.config.yamlpath import Reader

__all__ = ["check_issuer"]

_ANY = ("", "0.0.0.0", "::")


def _loopback(host: str) -> bool | None:
    """True or False for a loopback name or address; None for a name we cannot judge."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return None


def check_issuer(r: Reader, server: ServerSettings, tokens: TokenSettings) -> None:
    if server.trusted_proxies:
        return
    try:
        parts = urlsplit(tokens.issuer)
        issuer_port = parts.port or 443
    except ValueError:
        return  # the URL itself is refused elsewhere
    issuer_host = parts.hostname or ""
    hint = "; set it to the address clients reach, or list the front proxy in " \
           "server.trusted_proxies"
    if server.port != 0 and issuer_port != server.port:
        r.warn("tokens.issuer", f"port {issuer_port} is not server.port {server.port}: "
                                f"clients following the metadata would not reach this "
                                f"listener{hint}")
    if not issuer_host or server.host in _ANY:
        return
    listener_loopback, issuer_loopback = _loopback(server.host), _loopback(issuer_host)
    mismatch = False
    if listener_loopback and issuer_loopback is False:
        mismatch = True  # a listener on loopback cannot be reached at another address
    elif listener_loopback is False and issuer_loopback:
        mismatch = True  # nor a listener elsewhere at localhost
    else:
        try:
            mismatch = ipaddress.ip_address(issuer_host) != ipaddress.ip_address(server.host)
        except ValueError:
            mismatch = False  # a name: DNS decides, not this file
    if listener_loopback and issuer_loopback is None:
        mismatch = True  # a public name for a listener bound to loopback only
    if mismatch:
        r.warn("tokens.issuer", f"host {issuer_host} cannot be server.host {server.host}: "
                                f"clients following the metadata would not reach this "
                                f"listener{hint}")
