"""peer.address_key: what counts as one source for the per-address limits."""

from __future__ import annotations

import pytest

from gateway.peer import address_key


@pytest.mark.parametrize("address, key", [
    ("192.0.2.7", "192.0.2.7"),
    ("2001:db8:1:2::a", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
    ("2001:db8:1:3::a", "2001:db8:1:3::/64"),
    ("::ffff:192.0.2.7", "192.0.2.7"),  # an IPv4 caller on a dual-stack socket
    ("fe80::1%eth0", "fe80::/64"),
    ("", ""),
    ("not an address", "not an address"),
])
def test_ipv6_counts_by_its_64(address: str, key: str) -> None:
    assert address_key(address) == key
