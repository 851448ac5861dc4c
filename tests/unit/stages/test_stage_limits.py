"""Stage 4, ``ClientLimits.check``: a client's ``allowed_cidrs`` (403 ``forbidden``) and
``rate_limit`` (429 ``rate_limited`` with ``Retry-After``); clients without either pass."""

from __future__ import annotations

import ipaddress

import pytest

from gateway.config import ClientSettings, RateLimitSettings
from gateway.errors import ForbiddenError, RateLimitedError
from gateway.stages.limits import ClientLimits

RANGED = ClientSettings(client_id="ranged", allowed_cidrs=(
    ipaddress.ip_network("192.0.2.0/24"), ipaddress.ip_network("2001:db8::/32")))
LIMITED = ClientSettings(client_id="limited",
                         rate_limit=RateLimitSettings(requests_per_second=0.001, burst=2))
FREE = ClientSettings(client_id="free")


def test_no_limits_is_inactive_and_passes_everyone() -> None:
    limits = ClientLimits((FREE,))
    assert not limits.active
    limits.check("free", "203.0.113.9")
    limits.check("unknown", "not an address")
    assert ClientLimits((FREE, RANGED)).active and ClientLimits((LIMITED,)).active


def test_an_address_inside_the_ranges_passes() -> None:
    limits = ClientLimits((RANGED,))
    limits.check("ranged", "192.0.2.77")
    limits.check("ranged", "2001:db8::1")
    limits.check("free", "203.0.113.9")  # another client's ranges are not this one's


@pytest.mark.parametrize("address", ["203.0.113.9", "2001:db9::1", "", "garbage"])
def test_an_address_outside_the_ranges_is_403_forbidden(address: str) -> None:
    with pytest.raises(ForbiddenError) as caught:
        ClientLimits((RANGED,)).check("ranged", address)
    assert (caught.value.status_code, caught.value.error) == (403, "forbidden")


def test_past_the_burst_is_429_with_retry_after() -> None:
    limits = ClientLimits((LIMITED, FREE))
    limits.check("limited", "192.0.2.1")
    limits.check("limited", "192.0.2.1")
    with pytest.raises(RateLimitedError) as caught:
        limits.check("limited", "192.0.2.1")
    assert (caught.value.status_code, caught.value.error) == (429, "rate_limited")
    assert int(caught.value.extra_headers["Retry-After"]) >= 1
    limits.check("free", "192.0.2.1")  # one client's bucket is not another's
