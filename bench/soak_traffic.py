"""The soak's mixed clients (``bench/soak.py``): valid pushes and what an attacker sends, each
kind with the answers it may get."""

from __future__ import annotations

import asyncio
import base64
import random
import ssl
import time
from collections import Counter

import aiohttp

from gateway.tools.payloads import make_payload_bytes

__all__ = ["CLIENT_ID", "EXPECTED", "SECRET", "Traffic"]

CLIENT_ID = "soak"
SECRET = "soak-secret-for-local-use-only"
# Status codes each kind of request may get; anything else is a failure of the run.
EXPECTED = {
    "valid": {200}, "forged_token": {401}, "malformed_token": {400, 401},
    "bad_payload": {400}, "wrong_type": {415}, "wrong_secret": {401}, "too_large": {413},
    "bad_head": {400, 431}, "no_token": {401},
}


class Traffic:
    """The mixed clients; counts answers by kind and flags unexpected ones."""

    def __init__(self, port: int, context: ssl.SSLContext, seed: int) -> None:
        self.base = f"https://localhost:{port}"
        self.port = port
        self.context = context
        self.random = random.Random(seed)
        self.token = ""
        self.counts: Counter[str] = Counter()
        self.unexpected: Counter[str] = Counter()
        self.payloads = [make_payload_bytes(users, random.Random(users))
                         for users in (1, 10, 100)]

    @property
    def requests(self) -> int:
        return sum(self.counts.values())


    def note(self, kind: str, status: int) -> None:
        self.counts[kind] += 1
        if status not in EXPECTED[kind]:
            self.unexpected[f"{kind}:{status}"] += 1

    async def fetch_token(self, session: aiohttp.ClientSession, secret: str = SECRET) -> int:
        basic = base64.b64encode(f"{CLIENT_ID}:{secret}".encode()).decode()
        async with session.post(self.base + "/oauth2/token",
                                data={"grant_type": "client_credentials"},
                                headers={"Authorization": f"Basic {basic}"}) as response:
            body = await response.json()
            if response.status == 200:
                self.token = body["access_token"]
            return response.status

    async def push(self, session: aiohttp.ClientSession, kind: str, *, token: str | None,
                   body: bytes, content_type: str = "application/json") -> None:
        headers = {"Content-Type": content_type}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        async with session.post(self.base + "/segments/aam", data=body,
                                headers=headers) as response:
            await response.read()
            if kind == "valid" and response.status == 401:
                await self.fetch_token(session)  # IRIS's behaviour: refresh on 401
            self.note(kind, response.status)

    async def raw(self, kind: str, data: bytes, *, answer: bool) -> None:
        """A hand-made request (or garbage) on its own TLS connection."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port,
                                                       ssl=self.context,
                                                       server_hostname="localhost")
        try:
            writer.write(data)
            await writer.drain()
            if answer:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                self.note(kind, int(head.split(b" ")[1]))
            else:
                self.counts[kind] += 1
        finally:
            writer.close()

    async def garbage(self) -> None:
        """Not TLS at all on the TLS port, or a head abandoned halfway."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(self.random.randbytes(512))
        writer.write_eof()
        await asyncio.wait_for(reader.read(), 10)
        writer.close()
        self.counts["tls_garbage"] += 1

    async def one(self, session: aiohttp.ClientSession) -> None:
        roll = self.random.random()
        valid = self.random.choice(self.payloads)
        if roll < 0.55:
            await self.push(session, "valid", token=self.token, body=valid)
        elif roll < 0.62:
            forged = self.token[:-4] + ("AAAA" if not self.token.endswith("AAAA") else "BBBB")
            await self.push(session, "forged_token", token=forged, body=valid)
        elif roll < 0.67:
            await self.push(session, "malformed_token", token="not a token!", body=valid)
        elif roll < 0.72:
            await self.push(session, "no_token", token=None, body=valid)
        elif roll < 0.79:
            await self.push(session, "bad_payload", token=self.token,
                            body=valid.replace(b'"Status"', b'"Statuz"', 1))
        elif roll < 0.83:
            await self.push(session, "wrong_type", token=self.token, body=valid,
                            content_type="text/plain")
        elif roll < 0.85:
            await self.push(session, "too_large", token=self.token, body=b"x" * (2 << 20))
        elif roll < 0.87:
            self.note("wrong_secret", await self.fetch_token(session, SECRET + "x"))
        elif roll < 0.92:
            await self.raw("bad_head", b"POST /segments/aam HTTP/1.1\r\nHost: x\r\nX-A: \x00"
                           b"\r\n\r\n", answer=True)
        elif roll < 0.96:
            await self.raw("bad_head", b"GET / HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n",
                           answer=True)
        elif roll < 0.98:
            await self.raw("abandoned", b"POST /segments/aam HTTP/1.1\r\nHost: x\r\n",
                           answer=False)
        else:
            await self.garbage()

    async def worker(self, until: float, keepalive: bool, enough: int | None = None) -> None:
        connector = aiohttp.TCPConnector(ssl=self.context, force_close=not keepalive)
        async with aiohttp.ClientSession(connector=connector) as session:
            if not self.token:
                await self.fetch_token(session)
            while time.monotonic() < until and (enough is None or self.requests < enough):
                try:
                    await self.one(session)
                except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                    self.unexpected[f"client_error:{type(exc).__name__}"] += 1
