"""Who is calling: the peer's address, or the client's behind a trusted proxy.

Shared by the https stage (is this proxy's ``X-Forwarded-Proto`` believed?) and everything
that counts per source address (the failed-authentication guard, ``allowed_cidrs``).
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from aiohttp import web

from gateway.config.yamlpath import Network

__all__ = ["address_key", "client_address", "is_trusted_proxy"]

# An IPv6 end site is given a /64 at least (RFC 6177, RFC 7421): whoever holds one address
# of it can use them all, so counting per address would let one guesser count as billions.
_IPV6_SITE_PREFIX = 64

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


@lru_cache(maxsize=4096)
def address_key(address: str) -> str:
    """What counts as one source for per-address limits (failed authentications,
    connections): an IPv4 address (also written IPv4-mapped) as it is, an IPv6 address by its
    /64; anything unparsable as it is."""
    if ":" not in address:
        return address
    try:
        parsed = ipaddress.IPv6Address(address.partition("%")[0])
    except ValueError:
        return address
    if parsed.ipv4_mapped is not None:
        return str(parsed.ipv4_mapped)
    return str(ipaddress.IPv6Network((parsed, _IPV6_SITE_PREFIX), strict=False))
