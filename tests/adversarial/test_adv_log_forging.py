"""Log forging (docs/security.md, "Secrets never logged or echoed"): what a caller controls
(the path, which aiohttp percent-decodes, and the User-Agent) can never end a log line early,
start a forged one or send a terminal escape, in ``logging.format: text`` or ``json``.

The outside attack run sent a path holding ``%0A`` and a fake access line, and got that line
into the text log as a line of its own. Here the real gateway writes its access lines to
file descriptor 1 (``accesslog.stdout_writer``), which ``capfd`` captures.
"""

from __future__ import annotations

import json
import logging
import os
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from gateway.config import LoggingSettings, Settings
from gateway.observe.accesslog import LineWriter, stdout_writer
from gateway.observe.logs import configure_logging
from gateway.serve.server import RunningGateway

from adv_harness import raw_exchange

FAKE = "2030-01-01T00:00:00.000Z access 0 admin POST /segments/aam 200 upstream=200"
# %0A a forged line, %0D a carriage return over it, %1B[2J clears the terminal, U+202E turns
# the rest of the line around, U+2028 is a line separator to some viewers.
PATH = ("/nowhere%0A" + FAKE.replace(" ", "%20") + "%0D%1B%5B2J%E2%80%AE%E2%80%A8%C2%9B%7F")
CONTROLS = ("\n", "\r", "\x1b", "\u202e", "\u2028", "\x9b", "\x7f")


@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_a_forged_path_and_user_agent_stay_on_one_escaped_line(
        backend: tuple[str, Any], adv_config: Callable[..., dict[str, Any]],
        write_config: Callable[[dict[str, Any]], Settings],
        start: Callable[[Settings], Awaitable[RunningGateway]],
        client_ssl_ctx: ssl.SSLContext, capfd: pytest.CaptureFixture[str],
        log_format: str) -> None:
    config = adv_config(backend[0] + "/segments/aam")
    config["logging"] = {"format": log_format, "level": "info"}
    running = await start(write_config(config))
    # The parser refuses control bytes in a header value (400); what it lets through is
    # text that still does not print as itself: a bidi override, a line separator.
    user_agent = "probe \u202ered\u2028".encode()
    request = (f"GET {PATH} HTTP/1.1\r\nHost: localhost\r\n".encode()
               + b"User-Agent: " + user_agent + b"\r\n\r\n")
    answers = await raw_exchange(running.ports["https"], client_ssl_ctx, request)
    assert answers[0].status == 404
    stdout_writer().flush()
    out = capfd.readouterr().out
    lines = [line for line in out.split("\n") if "nowhere" in line or "2030-01-01" in line]
    assert len(lines) == 1, lines  # one request, one line: nothing forged after it
    line = lines[0]
    if log_format == "json":
        document = json.loads(line)
        path, agent = document["path"], document["user_agent"]
    else:
        path = agent = line
    for char in CONTROLS:  # not in the line, nor in any decoded value
        assert char not in line and char not in path and char not in agent, repr(char)
    assert "\\x0a2030-01-01T00:00:00.000Z access" in path  # escaped, and still readable
    assert "\\x1b[2J" in path and "\\u202e" in path and "\\u2028" in agent


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_application_records_escape_every_field(log_format: str) -> None:
    read, write = os.pipe()
    writer = LineWriter(write)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging(LoggingSettings(format=log_format, level="info"),  # type: ignore[arg-type]
                          writer)
        logging.getLogger("gateway.probe").info(
            "seen %s", "a\nb", extra={"reason_id": "probe", "value": "c\rd\x1b[2J\u2028"})
        writer.flush()
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    os.close(write)
    with os.fdopen(read) as stream:
        out = stream.read()
    assert out.endswith("\n") and out.count("\n") == 1, out
    for char in CONTROLS:
        assert char not in out[:-1], repr(char)
    if log_format == "json":
        record = json.loads(out)
        assert record["message"] == "seen a\\x0ab"
        assert not any(c in record["value"] for c in CONTROLS)
