"""W3C Trace Context (observe/trace.py): a valid caller ``traceparent`` is kept with its
``tracestate``; anything else starts a new trace and drops the caller's ``tracestate``."""

from __future__ import annotations

import re

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.observe.trace import request_id, trace_context

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
NEW = re.compile(r"traceparent: 00-([0-9a-f]{32})-([0-9a-f]{16})-00\r\n")


def _headers(*pairs: tuple[str, str]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(pairs))


def test_a_valid_traceparent_is_kept_with_its_tracestate() -> None:
    context = trace_context(_headers(("traceparent", VALID), ("tracestate", "rojo=00f067aa"),
                                     ("tracestate", "congo=t61rcWkgMzE")))
    assert context.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert context.fields == (f"traceparent: {VALID}\r\n"
                              "tracestate: rojo=00f067aa,congo=t61rcWkgMzE\r\n")


def test_without_a_traceparent_a_new_trace_starts() -> None:
    first, second = trace_context(_headers()), trace_context(_headers())
    found = NEW.fullmatch(first.fields)
    assert found and found[1] == first.trace_id
    assert found[1] != "0" * 32 and found[2] != "0" * 16
    assert first.trace_id != second.trace_id


@pytest.mark.parametrize("given", [
    "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # version ff is invalid
    "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # only version 00 is known
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # trace id all zeros
    "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # parent id all zeros
    "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",  # upper-case hex
    "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",   # trace id too short
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
    " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "",
])
def test_an_invalid_traceparent_starts_a_new_trace_without_the_tracestate(given: str) -> None:
    context = trace_context(_headers(("traceparent", given), ("tracestate", "rojo=1")))
    assert NEW.fullmatch(context.fields), context.fields
    assert context.trace_id != "4bf92f3577b34da6a3ce929d0e0e4736"


def test_two_traceparent_headers_start_a_new_trace() -> None:
    context = trace_context(_headers(("traceparent", VALID), ("traceparent", VALID)))
    assert NEW.fullmatch(context.fields)


@pytest.mark.parametrize("given", ["abc-123", "a" * 128, "req_1.2:3"])
def test_a_sane_request_id_is_kept(given: str) -> None:
    assert request_id(_headers(("X-Request-Id", given))) == given


@pytest.mark.parametrize("given", ["", "a" * 129, "has space", "new\nline", "é"])
def test_any_other_request_id_is_replaced_by_a_unique_one(given: str) -> None:
    made = {request_id(_headers(("X-Request-Id", given))) for _ in range(3)}
    made.add(request_id(_headers()))
    assert len(made) == 4 and given not in made
    assert all(re.fullmatch(r"[0-9a-f]{20}", value) for value in made)
