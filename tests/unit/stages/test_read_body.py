"""``stages/headers.read_body`` with a route's own bound: a declared-length body is read from
the stream under the bound the route was built with, not aiohttp's ``client_max_size`` (the
server's bound), so a route may allow more than the server, and less."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web
from aiohttp.base_protocol import BaseProtocol
from aiohttp.streams import StreamReader
from aiohttp.test_utils import make_mocked_request

from gateway.errors import InvalidRequestError, PayloadTooLargeError
from gateway.stages.headers import check_content_headers, read_body


class _Protocol(BaseProtocol):
    def pause_reading(self, *args: Any, **kwargs: Any) -> None:
        pass

    def resume_reading(self, *args: Any, **kwargs: Any) -> None:
        pass


def request(body: bytes, *, declared: int | None = None, client_max_size: int) -> web.Request:
    loop = asyncio.get_running_loop()
    stream = StreamReader(_Protocol(loop), 2**16, loop=loop)
    for start in range(0, len(body), 65536):
        stream.feed_data(body[start:start + 65536])
    stream.feed_eof()
    headers = {"Content-Type": "application/json",
               "Content-Length": str(len(body) if declared is None else declared)}
    return make_mocked_request("POST", "/segments/aep", headers=headers, payload=stream,
                               client_max_size=client_max_size)


async def test_a_route_may_allow_more_than_the_apps_client_max_size() -> None:
    body = b"[" + b"1," * 300_000 + b"1]"
    req = request(body, client_max_size=1 << 16)
    assert check_content_headers(req, "application/json", 1 << 20) is False
    raw, inflated = await read_body(req, 1 << 20, gzip=False)
    assert raw == inflated == body


async def test_and_less() -> None:
    req = request(b"[" + b" " * 5000 + b"]", client_max_size=1 << 20)
    with pytest.raises(PayloadTooLargeError):
        check_content_headers(req, "application/json", 4096)


async def test_a_body_shorter_than_its_length_is_a_bad_request() -> None:
    req = request(b"[1, 2]", declared=100, client_max_size=1 << 20)
    with pytest.raises(InvalidRequestError):
        await read_body(req, 1 << 20, gzip=False)
