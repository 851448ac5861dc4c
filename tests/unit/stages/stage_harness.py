"""Mocked requests for the stage tests: any peer, with or without TLS, with a body."""

from __future__ import annotations

import asyncio
import ssl
from time import perf_counter
from typing import Any
from unittest import mock

from aiohttp import web
from aiohttp.streams import StreamReader
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from gateway import keys
from gateway.observe.accesslog import Trace
from gateway.observe.trace import request_id, trace_context

TLS = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)


def mocked(method: str = "POST", path: str = "/segments/aam",
           headers: list[tuple[str, str]] | None = None, *, tls: bool = True,
           peer: str = "192.0.2.10", body: bytes | None = None) -> web.Request:
    """A request as the listener would hand it over, from ``peer``, over TLS or not; with
    ``body`` it has a payload to read (give ``Content-Length`` in ``headers`` to declare it)."""
    extra: dict[str, Any] = {"peername": (peer, 40000), "sockname": ("127.0.0.1", 8443),
                             "sslcontext": TLS if tls else None}
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: extra.get(name, default)
    options: dict[str, Any] = {}
    if body is not None:
        reader = StreamReader(mock.Mock(_reading_paused=False), 2**16,
                              loop=asyncio.get_running_loop())
        reader.feed_data(body)
        reader.feed_eof()
        options["payload"] = reader
    request = make_mocked_request(method, path, CIMultiDict(headers or []),
                                  transport=transport, sslcontext=TLS if tls else None,
                                  **options)
    request[keys.TRACE] = Trace(perf_counter(), request_id(request.headers),
                                trace_context(request.headers))
    return request
