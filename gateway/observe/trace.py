"""W3C Trace Context (https://www.w3.org/TR/trace-context/): the ``traceparent`` a request
carries to the backend, and its trace id for the access log (docs/operations.md); and the
request's ``X-Request-Id``, the caller's when it is sane, else a new unique one.

A caller's ``traceparent`` is kept when it is valid version ``00``: exactly one header of
the form ``00-<32 lower-case hex trace id>-<16 lower-case hex parent id>-<2 hex flags>``,
neither id all zeros. Its ``tracestate`` then travels with it unchanged. The gateway records
no spans of its own, so it does not put itself in between: the backend's span becomes a
child of the caller's, which is what happened. Anything else (no header, two headers, a
malformed one, another version) gets a new context: a random trace id and parent id, flags
``00`` (the gateway recorded nothing), and the caller's ``tracestate`` is dropped, as the
recommendation says a vendor must do when it restarts a trace.

Both ways of delivering a request send the same fields: the forward sends them at once, the
spool stores them in the header block, so a delivered push carries the trace it arrived
with. Trace ids are unique, not secret: a Mersenne Twister seeded from the OS costs a
fraction of a system call per request.
"""

from __future__ import annotations

import itertools
import os
import random
import re

from multidict import CIMultiDictProxy

__all__ = ["TraceContext", "request_id", "trace_context"]

_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")
_ZERO_TRACE = "0" * 32
_ZERO_PARENT = "0" * 16
# The recommendation's own bound on tracestate (32 members of at most 256 characters is
# longer, but 512 is what it asks every vendor to propagate at least).
_MAX_TRACESTATE = 512
_random = random.Random(os.urandom(16))  # noqa: S311 - unique ids, not secrets
_bits = _random.getrandbits
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# Unique, not secret: a per-process random prefix and a counter cost a fraction of
# os.urandom's system call per request.
_ID_PREFIX = os.urandom(6).hex()
_ID_COUNTER = itertools.count(1)


def request_id(headers: CIMultiDictProxy[str]) -> str:
    """The caller's ``X-Request-Id`` when it is sane, else a new unique one."""
    given = headers.get("X-Request-Id")
    if given is not None and _REQUEST_ID.fullmatch(given):
        return given
    return f"{_ID_PREFIX}{next(_ID_COUNTER):08x}"


class TraceContext:
    """The trace id (for the access log) and the header lines for the backend."""

    __slots__ = ("fields", "trace_id")

    def __init__(self, trace_id: str, fields: str) -> None:
        self.trace_id = trace_id
        self.fields = fields  # "traceparent: ...\r\n" and perhaps "tracestate: ...\r\n"


def _new() -> TraceContext:
    ids = f"{_bits(192):048x}"  # both ids from one draw: a trace id, then a parent id
    if ids.startswith(_ZERO_TRACE) or ids.endswith(_ZERO_PARENT):  # all zeros is invalid
        return _new()
    return TraceContext(ids[:32], f"traceparent: 00-{ids[:32]}-{ids[32:]}-00\r\n")


def trace_context(headers: CIMultiDictProxy[str]) -> TraceContext:
    """The caller's trace when its ``traceparent`` is valid, else a new one."""
    given = headers.get("traceparent")
    if given is None:
        return _new()
    values = headers.getall("traceparent")
    found = _TRACEPARENT.fullmatch(given) if len(values) == 1 else None
    if found is None or found[1] == _ZERO_TRACE or found[2] == _ZERO_PARENT:
        return _new()
    fields = f"traceparent: {given}\r\n"
    if "tracestate" in headers:
        # RFC 9110 §5.3: several fields combine into one comma-separated list.
        state = ",".join(headers.getall("tracestate"))
        if len(state) <= _MAX_TRACESTATE and state.isprintable():
            fields += f"tracestate: {state}\r\n"
    return TraceContext(found[1], fields)
