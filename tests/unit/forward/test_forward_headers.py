"""The header block's trust filter (forward/headers.py): what is kept, dropped and counted,
and the memory of verdicts staying bounded under a flood of new names."""

from __future__ import annotations

from multidict import CIMultiDict, CIMultiDictProxy

from gateway.config import RouteSettings
from gateway.forward import headers as forward_headers
from gateway.forward.headers import request_fields

TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _block(pairs: list[tuple[str, str]], **route: object) -> list[str]:
    settings = RouteSettings(path="/p", upstreams=("http://127.0.0.1:1/p",), **route)  # type: ignore[arg-type]
    raw = request_fields(CIMultiDictProxy(CIMultiDict(pairs)), "POST", 2, settings,
                         client_id="aam", scope="s", request_id="r",
                         forwarded_proto="https", client_address="192.0.2.1",
                         traceparent=f"traceparent: {TRACE}\r\n")
    return raw.decode().split("\r\n")[:-1]


def test_kept_dropped_and_passed() -> None:
    lines = _block([("traceparent", "00-ffffffffffffffffffffffffffffffff-b7ad6b7169203331-01"),
                    ("X-Real-IP", "10.0.0.1"), ("X_Custom", "1"), ("x-ssl-client-s-dn", "CN=a"),
                    ("Connection", "X-Hop"), ("X-Hop", "1"), ("Accept", "*/*")])
    names = [line.split(":")[0] for line in lines]
    assert "Accept" in names  # ordinary headers pass
    # The trace context's own line (observe/trace.py) replaces the caller's, never both.
    assert [x for x in lines if x.lower().startswith("traceparent")] == [f"traceparent: {TRACE}"]
    assert not {"X-Real-IP", "X_Custom", "x-ssl-client-s-dn", "X-Hop", "Connection"} & set(names)
    passed = _block([("X-Real-IP", "10.0.0.1"), ("X_Custom", "1")],
                    pass_headers=("x-real-ip", "x_custom"))
    assert "X-Real-IP: 10.0.0.1" in passed and "X_Custom: 1" in passed


def test_verdicts_are_remembered_within_a_bound() -> None:
    policy = forward_headers._policy(False, ())
    policy.verdicts.clear()
    flood = [(f"X-Random-{i}", "v") for i in range(forward_headers._MAX_NAMES + 500)]
    lines = _block([*flood, ("X_Late", "1"), ("X-Late-Ok", "1")])
    assert len(policy.verdicts) == forward_headers._MAX_NAMES
    # Past the bound a name is judged afresh each time, with the same verdict.
    assert "X-Late-Ok: 1" in lines and not any(line.startswith("X_Late") for line in lines)
