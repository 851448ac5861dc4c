"""Stage 1, ``check_https``: TLS from the transport, or one ``X-Forwarded-Proto: https``
from a trusted proxy; every other request is 403 ``invalid_request``."""

from __future__ import annotations

import ipaddress

import pytest

from gateway.errors import InsecureTransportError
from gateway.stages.https import check_https

from stage_harness import mocked

PROXIES = (ipaddress.ip_network("10.0.0.0/8"),)


async def test_tls_passes_from_anyone() -> None:
    check_https(mocked(tls=True), ())
    check_https(mocked(tls=True, peer="10.1.2.3"), PROXIES)


async def test_a_trusted_proxy_saying_https_once_passes() -> None:
    check_https(mocked(headers=[("X-Forwarded-Proto", "https")], tls=False,
                       peer="10.1.2.3"), PROXIES)
    check_https(mocked(headers=[("X-Forwarded-Proto", " HTTPS ")], tls=False,
                       peer="10.1.2.3"), PROXIES)


@pytest.mark.parametrize(("headers", "peer", "trusted"), [
    ([], "192.0.2.10", ()),                                            # plain HTTP
    ([], "10.1.2.3", PROXIES),                                         # proxy, no header
    ([("X-Forwarded-Proto", "https")], "192.0.2.10", PROXIES),         # untrusted peer
    ([("X-Forwarded-Proto", "https")], "10.1.2.3", ()),                # nobody trusted
    ([("X-Forwarded-Proto", "http")], "10.1.2.3", PROXIES),            # says http
    ([("X-Forwarded-Proto", "https"), ("X-Forwarded-Proto", "https")],
     "10.1.2.3", PROXIES),                                             # said twice
    ([("X-Forwarded-Proto", "https, https")], "10.1.2.3", PROXIES),    # folded list
], ids=["plain", "proxy-without-header", "untrusted-peer", "no-trusted-proxies",
        "proxy-says-http", "header-twice", "folded-header"])
async def test_refusals_are_403_invalid_request(headers: list[tuple[str, str]], peer: str,
                                                trusted: tuple[ipaddress.IPv4Network, ...]
                                                ) -> None:
    with pytest.raises(InsecureTransportError) as caught:
        check_https(mocked(headers=headers, tls=False, peer=peer), trusted)
    assert (caught.value.status_code, caught.value.error) == (403, "invalid_request")
    assert caught.value.text == "HTTPS is required"
