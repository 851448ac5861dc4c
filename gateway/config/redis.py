"""The ``sentinel`` block of ``state`` and ``spool`` (docs/configuration.md, docs/deploy.md
section 6): Redis found through Redis Sentinel instead of a fixed ``url``.

``sentinel: {master_name, nodes: ["host:port", ...], username?, password?,
sentinel_password?, ca_file?, db?}``. ``password``/``username`` are the Redis primary's
(ACL) credentials, ``sentinel_password`` the Sentinels' own; with ``ca_file`` both the
Sentinels and the primary are spoken to over TLS, verified against it. The client is
redis-py's (``redis.asyncio.sentinel``), built in ``state/redis_connection.py``.
"""

from __future__ import annotations

from typing import Any

from gateway.config.listener import check_certificates
from gateway.config.model import SentinelSettings
from gateway.config.yamlpath import Reader

__all__ = ["read_sentinel"]

_KEYS = ("master_name", "nodes", "username", "password", "sentinel_password", "ca_file", "db")


def _node(r: Reader, text: str, path: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        r.fail(path, "must be host:port (a Sentinel, usually port 26379)")
        return "", 0
    return host, int(port)


def read_sentinel(r: Reader, value: Any, path: str) -> SentinelSettings | None:
    """``path`` (``state.sentinel``, ``spool.sentinel``) or None when absent."""
    if value is None:
        return None
    m = r.mapping(value, path, _KEYS)
    name = r.string(m.get("master_name"), f"{path}.master_name", default="")
    r.check(bool(name), f"{path}.master_name", "is required (the name the Sentinels monitor)")
    nodes = tuple(_node(r, text, f"{path}.nodes[{i}]")
                  for i, text in enumerate(r.string_list(m.get("nodes"), f"{path}.nodes")))
    r.check(bool(nodes), f"{path}.nodes",
            "needs at least one Sentinel host:port (three in production)")
    return SentinelSettings(
        master_name=name, nodes=nodes,
        username=r.optional_string(m.get("username"), f"{path}.username"),
        password=r.optional_string(m.get("password"), f"{path}.password"),
        sentinel_password=r.optional_string(m.get("sentinel_password"),
                                            f"{path}.sentinel_password"),
        ca_file=r.optional_file(m.get("ca_file"), f"{path}.ca_file", check=check_certificates),
        db=r.integer(m.get("db"), f"{path}.db", default=0, minimum=0, maximum=15))
