"""The soak test's clients (``soak.py``): what each kind of request sends and may get back.

``Traffic`` is the mix: valid pushes, the usual attacks, and what an outside attack run sent
(held-back token bodies, impersonating headers, log-forging paths, ``Expect`` without a
token, ``HTTP/2.0`` lines), plus periodic guess floods and connection bursts
(``connection_burst``). Answers are counted by kind; any status outside ``EXPECTED`` is an
unexpected answer, and so is a ``Server`` header naming a version or an impersonating header
reaching the backend.
"""

from __future__ import annotations

import asyncio
import base64
import random
import ssl
import time
from collections import Counter

import aiohttp

from gateway.tools.payloads import make_payload_bytes

__all__ = ["CLIENT_ID", "EXPECTED", "OPAQUE", "SECRET", "Traffic", "connection_burst"]

CLIENT_ID = "soak"
SECRET = "soak-secret-for-local-use-only"
OPAQUE = "soak-opaque-credential-" + "x" * 43  # local use only
SAMPLE_SECONDS = 10.0
WARMUP_SECONDS = 60.0
FLOOD_EVERY, FLOOD_SIZE = 20.0, 40
HOG_EVERY, HOG_SIZE, PER_ADDRESS = 30.0, 300, 256
# Status codes each kind of request may get; anything else is a failure of the run.
EXPECTED = {
    "valid": {200}, "forged_token": {401}, "malformed_token": {400, 401},
    "bad_payload": {400}, "wrong_type": {415}, "too_large": {413},
    # 503: the slow-hash pool is full (a guess flood is running); a refusal, not a failure.
    "wrong_secret": {401, 503},
    "bad_head": {400, 431}, "no_token": {401}, "impersonating_headers": {200},
    "log_forging": {404}, "expect_no_token": {401}, "http2_line": {505},
    "held_back_guess": {401, 503}, "guess_flood": {401, 503}, "opaque_token": {200},
}
IMPERSONATING = {
    "X_Gateway_Client_Id": "admin", "X_Forwarded_For": "10.9.9.9", "X-Real-IP": "10.9.9.9",
    "True-Client-IP": "10.9.9.9", "X-HTTP-Method-Override": "DELETE",
    "X-Original-URL": "/admin", "Remote-User": "admin", "X-SSL-Client-Verify": "SUCCESS",
}
FORGED_PATH = "/soak%0A2030-01-01T00:00:00.000Z%20access%20-%20admin%0D%1B%5B2J%E2%80%AE"


class Traffic:
    """The mixed clients; counts answers by kind and flags unexpected ones."""

    def __init__(self, port: int, context: ssl.SSLContext, seed: int, backend: int) -> None:
        self.base = f"https://localhost:{port}"
        self.backend = f"http://127.0.0.1:{backend}"
        self.port = port
        self.context = context
        self.random = random.Random(seed)
        self.token = ""
        self.counts: Counter[str] = Counter()
        self.unexpected: Counter[str] = Counter()
        self.payloads = [make_payload_bytes(users, random.Random(users))
                         for users in (1, 10, 100)]
        # Held while a connection burst is open, so a sample never counts its descriptors.
        self.burst = asyncio.Lock()

    @property
    def requests(self) -> int:
        return sum(self.counts.values())

    def note(self, kind: str, status: int) -> None:
        self.counts[kind] += 1
        if status not in EXPECTED[kind]:
            self.unexpected[f"{kind}:{status}"] += 1

    def check_server(self, value: str | None) -> None:
        if value is not None and any(c.isdigit() for c in value):
            self.unexpected["server_version_disclosed"] += 1

    async def fetch_token(self, session: aiohttp.ClientSession, secret: str = SECRET,
                          opaque: str | None = None) -> int:
        basic = opaque or base64.b64encode(f"{CLIENT_ID}:{secret}".encode()).decode()
        async with session.post(self.base + "/oauth2/token",
                                data={"grant_type": "client_credentials"},
                                headers={"Authorization": f"Basic {basic}"}) as response:
            body = await response.json()
            self.check_server(response.headers.get("Server"))
            if response.status == 200:
                self.token = body["access_token"]
            return response.status

    async def push(self, session: aiohttp.ClientSession, kind: str, *, token: str | None,
                   body: bytes, content_type: str = "application/json",
                   extra: dict[str, str] | None = None) -> None:
        headers = {"Content-Type": content_type, **(extra or {})}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        async with session.post(self.base + "/segments/aam", data=body,
                                headers=headers) as response:
            await response.read()
            self.check_server(response.headers.get("Server"))
            if kind in ("valid", "impersonating_headers") and response.status == 401:
                await self.fetch_token(session)  # IRIS's behaviour: refresh on 401
            self.note(kind, response.status)

    async def impersonate(self, session: aiohttp.ClientSession, body: bytes) -> None:
        await self.push(session, "impersonating_headers", token=self.token, body=body,
                        extra=IMPERSONATING)
        # The backend's last request (this one or another client's) must hold none of them.
        async with session.get(self.backend + "/_stats") as response:
            last = (await response.json()).get("last") or {}
        names = {name.lower() for name in last.get("headers", {})}
        if "_" in "".join(names) or names & {n.lower() for n in IMPERSONATING}:
            self.unexpected["impersonating_header_forwarded"] += 1

    async def raw(self, kind: str, data: bytes, *, answer: bool, then: bytes = b"") -> None:
        """A hand-made request (or garbage) on its own TLS connection; ``then`` is sent
        after a pause (a held-back body)."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port,
                                                       ssl=self.context,
                                                       server_hostname="localhost")
        try:
            writer.write(data)
            await writer.drain()
            if then:
                await asyncio.sleep(0.2)
                writer.write(then)
            if answer:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                self.note(kind, int(head.split(b" ")[1]))
                if b"aiohttp" in head or b"Python/" in head:
                    self.unexpected["server_version_disclosed"] += 1
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

    def guess_head(self) -> bytes:
        secret = base64.b64encode(f"{CLIENT_ID}:guess-{self.random.random()}".encode())
        return (b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\nAuthorization: Basic " + secret
                + b"\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                b"Content-Length: 29\r\n\r\n")

    async def one(self, session: aiohttp.ClientSession) -> None:
        roll = self.random.random()
        valid = self.random.choice(self.payloads)
        if roll < 0.50:
            await self.push(session, "valid", token=self.token, body=valid)
        elif roll < 0.56:
            forged = self.token[:-4] + ("AAAA" if not self.token.endswith("AAAA") else "BBBB")
            await self.push(session, "forged_token", token=forged, body=valid)
        elif roll < 0.60:
            await self.push(session, "malformed_token", token="not a token!", body=valid)
        elif roll < 0.64:
            await self.push(session, "no_token", token=None, body=valid)
        elif roll < 0.70:
            await self.push(session, "bad_payload", token=self.token,
                            body=valid.replace(b'"Status"', b'"Statuz"', 1))
        elif roll < 0.73:
            await self.push(session, "wrong_type", token=self.token, body=valid,
                            content_type="text/plain")
        elif roll < 0.75:
            await self.push(session, "too_large", token=self.token, body=b"x" * (2 << 20))
        elif roll < 0.77:
            self.note("wrong_secret", await self.fetch_token(session, SECRET + "x"))
        elif roll < 0.81:
            await self.raw("bad_head", b"POST /segments/aam HTTP/1.1\r\nHost: x\r\nX-A: \x00"
                           b"\r\n\r\n", answer=True)
        elif roll < 0.84:
            await self.raw("bad_head", b"GET / HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n",
                           answer=True)
        elif roll < 0.86:
            await self.raw("abandoned", b"POST /segments/aam HTTP/1.1\r\nHost: x\r\n",
                           answer=False)
        elif roll < 0.87:
            await self.garbage()
        elif roll < 0.90:
            await self.impersonate(session, valid)
        elif roll < 0.92:
            async with session.get(self.base + FORGED_PATH) as response:
                await response.read()
                self.note("log_forging", response.status)
        elif roll < 0.94:
            await self.raw("expect_no_token", b"POST /segments/aam HTTP/1.1\r\nHost: x\r\n"
                           b"Content-Type: application/json\r\nContent-Length: 2\r\n"
                           b"Expect: 100-continue\r\n\r\n", answer=True)
        elif roll < 0.95:
            await self.raw("http2_line", b"GET /segments/aam HTTP/2.0\r\nHost: x\r\n\r\n",
                           answer=True)
        elif roll < 0.97:
            await self.raw("held_back_guess", self.guess_head(), answer=True,
                           then=b"grant_type=client_credentials")
        else:
            self.note("opaque_token", await self.fetch_token(session, opaque=OPAQUE))

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

    def _going(self, until: float, every: float, enough: int | None) -> bool:
        return time.monotonic() + every < until and (enough is None or self.requests < enough)

    async def floods(self, until: float, enough: int | None = None) -> None:
        """Every FLOOD_EVERY seconds, FLOOD_SIZE held-back slow-hash guesses at once, until
        ``until`` or ``enough`` answers in all."""
        while self._going(until, FLOOD_EVERY, enough):
            await asyncio.sleep(FLOOD_EVERY)
            results = await asyncio.gather(*(
                self.raw("guess_flood", self.guess_head(), answer=True,
                         then=b"grant_type=client_credentials") for _ in range(FLOOD_SIZE)),
                return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    self.unexpected[f"client_error:{type(result).__name__}"] += 1

    async def hogs(self, until: float, enough: int | None = None) -> None:
        """Every HOG_EVERY seconds one address (127.0.0.9) opens HOG_SIZE idle connections;
        at most PER_ADDRESS may stay open, the rest evicted oldest first."""
        while self._going(until, HOG_EVERY, enough):
            await asyncio.sleep(HOG_EVERY)
            async with self.burst:
                try:
                    still = await connection_burst(self.port, self.context)
                except OSError as exc:
                    self.unexpected[f"client_error:{type(exc).__name__}"] += 1
                    continue
                self.counts["connection_hog"] += 1
                if still > PER_ADDRESS:
                    self.unexpected[f"connection_hog:{still}_open"] += 1


async def _closed(reader: asyncio.StreamReader) -> bool:
    try:
        data = await asyncio.wait_for(reader.read(1), 0.01)
    except TimeoutError:
        return False
    return data == b""


async def connection_burst(port: int, context: ssl.SSLContext) -> int:
    """HOG_SIZE idle TLS connections from 127.0.0.9 at once, then all closed; how many were
    still open (not evicted) once all had been opened. Returns a second after the closes,
    so the gateway has seen them."""
    streams: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        for _ in range(HOG_SIZE):
            streams.append(await asyncio.open_connection(
                "127.0.0.1", port, ssl=context, server_hostname="localhost",
                local_addr=("127.0.0.9", 0)))
        open_ = [reader for reader, _ in streams if not await _closed(reader)]
        if len(open_) > PER_ADDRESS:
            # The gateway evicts when it registers a connection, after the client's side
            # of the handshake is done: a second look sees evictions still in flight.
            await asyncio.sleep(1.0)
            open_ = [reader for reader in open_ if not await _closed(reader)]
        return len(open_)
    finally:
        for _, writer in streams:
            writer.close()
        await asyncio.sleep(1.0)
