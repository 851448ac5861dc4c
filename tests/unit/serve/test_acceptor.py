"""``serve/acceptor.py``: running out of descriptors at ``accept`` is logged (rate-limited)
and retried; the listener stays open and takes the waiting connection once it can."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket

import pytest

from gateway.serve import acceptor
from gateway.serve.acceptor import Acceptor
from gateway.serve.connections import ConnectionLimits, Registry


class _OutOfFiles(socket.socket):
    """A listening socket whose first ``failures`` accepts fail as when no descriptor is
    left (EMFILE)."""

    failures = 3

    def accept(self) -> tuple[socket.socket, object]:
        if self.failures:
            self.failures -= 1
            raise OSError(errno.EMFILE, "Too many open files")
        return super().accept()


class _Recorder(asyncio.Protocol):
    def __init__(self, made: list[asyncio.BaseTransport]) -> None:
        self.made = made

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.made.append(transport)


async def test_out_of_files_at_accept_is_logged_once_and_the_listener_keeps_serving(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(acceptor, "RETRY_SECONDS", 0.01)
    listening = _OutOfFiles(socket.AF_INET, socket.SOCK_STREAM)
    listening.bind(("127.0.0.1", 0))
    listening.listen(16)
    made: list[asyncio.BaseTransport] = []
    server = Acceptor([listening], lambda: _Recorder(made), None, Registry(ConnectionLimits()))
    writers = []
    try:
        with caplog.at_level(logging.INFO, logger="gateway.guards"):
            async with asyncio.timeout(10):
                for expected in (1, 2):
                    _, writer = await asyncio.open_connection(*listening.getsockname())
                    writers.append(writer)
                    while len(made) < expected:
                        await asyncio.sleep(0.01)
        failures = [r for r in caplog.records
                    if getattr(r, "reason_id", "") == "accept_out_of_files"]
        assert len(failures) == 1 and failures[0].levelno == logging.ERROR
        assert listening.fileno() != -1 and _OutOfFiles.failures == 3  # class value intact
    finally:
        for writer in writers:
            writer.close()
        for transport in made:
            transport.close()
        server.close()
    assert listening.fileno() == -1
