"""Shared pieces of the adversarial suite: configurations, forged tokens, raw TLS requests.

Everything talks to loopback only. ``raw_exchange`` speaks HTTP/1.1 by hand over TLS so that
a test can send bytes no client library would (bad framing, invalid UTF-8, control
characters) and read back exactly what the gateway answered.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import ssl
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from e2e_harness import (
    AUDIENCE,
    CLIENT_ID,
    CLIENT_SECRET,
    ISSUER,
    SEED_CREDENTIAL,
    VECTORS,
    base_config,
    basic,
    fetch_token,
)

__all__ = [
    "AUDIENCE", "CLIENT_ID", "CLIENT_SECRET", "DOCUMENTED_STATUSES", "ISSUER",
    "SEED_CREDENTIAL", "SEED_PAYLOAD", "VECTORS", "RawAnswer", "assert_error_body",
    "b64url", "backend_count", "base_config", "basic", "cheap_hash", "fetch_token",
    "raw_exchange", "read_answer",
]

SEED_PAYLOAD = (VECTORS / "segment-payload.json").read_bytes()
# Every status the public listener may answer with (417: RFC 9110 §10.1.1, an
# Expect other than 100-continue; 505: a version other than HTTP/1.0 or 1.1).
DOCUMENTED_STATUSES = frozenset({200, 400, 401, 403, 404, 405, 408, 413, 414, 415, 417, 429, 431,
                                 502, 503, 504, 505})
ANSWER_SECONDS = 10.0  # no single exchange in this suite may take longer: never a hung test


def cheap_hash(secret: str) -> str:
    """A scrypt hash string at the lowest cost the config accepts (ln=10): the fuzzers send
    hundreds of Basic credentials, each costing one scrypt run."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=1 << 10, r=8, p=1, dklen=32)
    encode = base64.b64encode
    return (f"scrypt$ln=10,r=8,p=1${encode(salt).decode().rstrip('=')}"
            f"${encode(digest).decode().rstrip('=')}")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@dataclass
class RawAnswer:
    """One HTTP answer as read off the socket; ``status`` 0 when the server closed first."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    closed: bool = False

    def json(self) -> Any:
        return json.loads(self.body)


async def read_answer(reader: asyncio.StreamReader) -> RawAnswer:
    """Read one answer (Content-Length or close-delimited); ``status`` 0 on a bare close."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
        return RawAnswer(0, closed=True)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        try:
            body = await reader.readexactly(int(headers["content-length"]))
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            return RawAnswer(status, headers, b"", closed=True)
    else:
        body = await reader.read(1 << 20)
    return RawAnswer(status, headers, body)


async def raw_exchange(port: int, context: ssl.SSLContext, request: bytes, *,
                       answers: int = 1) -> list[RawAnswer]:
    """Send ``request`` over a new TLS connection; read up to ``answers`` answers, stopping
    at the first close. Bounded by ``ANSWER_SECONDS``."""
    async with asyncio.timeout(ANSWER_SECONDS):
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context,
                                                       server_hostname="localhost")
        try:
            writer.write(request)
            await writer.drain()
            got: list[RawAnswer] = []
            for _ in range(answers):
                answer = await read_answer(reader)
                got.append(answer)
                if answer.status == 0 or answer.headers.get("connection") == "close":
                    break
            return got
        finally:
            writer.close()


def assert_error_body(answer: RawAnswer | tuple[int, bytes]) -> dict[str, str]:
    """An error answer's body is JSON ``{error, error_description}``, no trace."""
    body = answer.body if isinstance(answer, RawAnswer) else answer[1]
    assert b"Traceback" not in body and b'File "' not in body, body[:200]
    document = json.loads(body)
    assert isinstance(document, dict), body[:200]
    assert set(document) == {"error", "error_description"}, document
    assert isinstance(document["error"], str) and document["error"]
    assert isinstance(document["error_description"], str)
    return document


async def backend_count(base_url: str) -> int:
    """How many pushes the sample backend has received (its ``GET /_stats``)."""
    async with aiohttp.ClientSession() as client, client.get(base_url + "/_stats") as response:
        return int((await response.json())["requests"])
