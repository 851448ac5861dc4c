"""Who is calling: the peer's address, or the client's behind a trusted proxy.

Shared by the https stage (is this proxy's ``X-Forwarded-Proto`` believed?) and everything
that counts per source address (the failed-authentication guard, ``allowed_cidrs``).
"""

from __future__ import annotations

import ipaddress

from aiohttp import web

from gateway.config.yamlpath import Network

__all__ = ["client_address", "is_trusted_proxy"]

def is_trusted_proxy(peer: str | None, trusted: tuple[Network, ...]) -> bool:
    if not trusted or not peer:
        return False
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    return any(address in network for network in trusted)


def client_address(request: web.Request, trusted: tuple[Network, ...]) -> str:
    """The caller's address: the peer, or from a trusted proxy the rightmost address of
    ``X-Forwarded-For`` that is not itself a trusted proxy."""
    peer = request.remote or ""
    if not is_trusted_proxy(peer, trusted):
        return peer
    chain = [part.strip() for value in request.headers.getall("X-Forwarded-For", ())
             for part in value.split(",")]
    for hop in reversed(chain):
        if hop and not is_trusted_proxy(hop, trusted):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer
    return peer
