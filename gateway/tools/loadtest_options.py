"""The load test's options, checked when built: loopback targets only unless allowed, every
run bounded in time and count."""

from __future__ import annotations

import base64
import ipaddress
import ssl
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import quote_plus, urlsplit, urlunsplit

__all__ = [
    "DEFAULT_DURATION_S",
    "IRIS_TIMEOUT_S",
    "IRIS_USER_AGENT",
    "MAX_CONCURRENCY",
    "MAX_DURATION_S",
    "MAX_REQUESTS",
    "MAX_USERS",
    "POOL_MAX_BYTES",
    "POOL_SIZE",
    "TOKEN_BODY",
    "TOKEN_CONTENT_TYPE",
    "LoadOptions",
    "LoadTestError",
    "UsageError",
    "basic_credential",
    "is_loopback_host",
]

IRIS_USER_AGENT = "Adobe Audience Manager Iris"
# Byte for byte Adobe's sample token request (vectors/token-request.http), no space around ';'.
TOKEN_CONTENT_TYPE = "application/x-www-form-urlencoded;charset=UTF-8"
TOKEN_BODY = b"grant_type=client_credentials"
# IRIS gives the partner 3,000 ms to answer 200; a slower answer is a failed push for IRIS.
IRIS_TIMEOUT_S = 3.0
POOL_SIZE = 64
POOL_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_DURATION_S = 10.0
# The hard bounds that hold even when the caller asks for more.
MAX_DURATION_S = 3600.0
MAX_REQUESTS = 10_000_000
MAX_CONCURRENCY = 4096
MAX_USERS = 100_000


class LoadTestError(Exception):
    """The run could not start or go on, e.g. no token could be obtained (exit 1)."""


class UsageError(LoadTestError):
    """Options that cannot work, or a target we refuse to load (exit 2)."""


def basic_credential(client_id: str, secret: str) -> str:
    """RFC 6749 §2.3.1: ``base64(urlencode(client_id) ":" urlencode(secret))``."""
    pair = f"{quote_plus(client_id)}:{quote_plus(secret)}"
    return base64.b64encode(pair.encode("ascii")).decode("ascii")


def is_loopback_host(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ::1 (IPv4-mapped forms included)."""
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost":
        return True
    try:
        addr = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        # Any other name could resolve anywhere; only the literal addresses are provable.
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped.is_loopback
    return addr.is_loopback


def _check_url(name: str, url: str, allow_remote: bool) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise UsageError(f"{name}: expected an https:// (or http://) URL with a host, got {url!r}")
    if not allow_remote and not is_loopback_host(parts.hostname):
        raise UsageError(
            f"{name}: refusing to load-test {parts.hostname!r}, which is not loopback "
            "(127.0.0.0/8, ::1, localhost); pass --allow-remote only for a host you own"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadOptions:
    """One load run. ``credential`` is the Basic value IRIS sends as is (``basic_credential``
    makes the RFC form); ``profile="aep"`` sends ``client_id`` and ``client_secret`` in the
    form body instead, as Adobe Experience Platform does, and pushes AEP batches of
    ``users_per_request`` profiles (``loadtest_aep.py``). ``duration`` None means 10 s, or,
    with ``requests``, a 1-hour safety cap."""

    url: str
    credential: str = field(default="", repr=False)
    profile: Literal["iris", "aep"] = "iris"
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    token_url: str | None = None
    method: str = "POST"
    users_per_request: int = 10
    concurrency: int = 16
    duration: float | None = None
    requests: int | None = None
    rate: float | None = None
    timeout: float = IRIS_TIMEOUT_S
    ca_file: str | None = None
    insecure: bool = False
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False)
    allow_remote: bool = False
    seed: int = 0
    progress: bool = False
    admin_url: str | None = None  # the gateway's admin listener, to read its /metrics

    def __post_init__(self) -> None:
        _check_url("URL", self.url, self.allow_remote)
        _check_url("--token-url", self.effective_token_url, self.allow_remote)
        if self.admin_url is not None:
            _check_url("--admin-url", self.admin_url, self.allow_remote)
        if self.profile == "aep":
            # AEP puts both in the form body: any text, form-urlencoded when sent.
            if not self.client_id or not self.client_secret:
                raise UsageError("--profile aep: give --client-id and --secret (AEP sends "
                                 "them in the form body)")
        # A header value: printable ASCII only, so no CR/LF can split the request.
        elif not (self.credential.isascii() and self.credential.isprintable()) \
                or not self.credential:
            raise UsageError("the credential must be non-empty printable ASCII")
        if self.method not in ("POST", "GET"):
            raise UsageError(f"--method: POST or GET, got {self.method!r}")
        if not 1 <= self.concurrency <= MAX_CONCURRENCY:
            raise UsageError(f"--concurrency: 1..{MAX_CONCURRENCY}")
        if not 1 <= self.users_per_request <= MAX_USERS:
            flag = "--profiles-per-request" if self.profile == "aep" else "--users-per-request"
            raise UsageError(f"{flag}: 1..{MAX_USERS}")
        if self.duration is not None and not 0 < self.duration <= MAX_DURATION_S:
            raise UsageError(f"--duration: more than 0, at most {MAX_DURATION_S:g} seconds")
        if self.requests is not None and not 1 <= self.requests <= MAX_REQUESTS:
            raise UsageError(f"--requests: 1..{MAX_REQUESTS}")
        if self.rate is not None and not self.rate > 0:
            raise UsageError("--rate: must be more than 0 requests per second")
        if not self.timeout > 0:
            raise UsageError("--timeout: must be more than 0 seconds")
        if self.insecure and (self.ca_file or self.ssl_context):
            raise UsageError("--insecure and --ca exclude each other")

    @property
    def effective_token_url(self) -> str:
        if self.token_url:
            return self.token_url
        parts = urlsplit(self.url)
        return urlunsplit((parts.scheme, parts.netloc, "/oauth2/token", "", ""))

    @property
    def time_limit(self) -> float:
        if self.duration is not None:
            return self.duration
        return MAX_DURATION_S if self.requests is not None else DEFAULT_DURATION_S

    def client_ssl(self) -> ssl.SSLContext | bool:
        """What the connector verifies with; a bad ``--ca`` file is a usage error."""
        if self.ssl_context is not None:
            return self.ssl_context
        if self.insecure:
            return False  # aiohttp: no certificate or hostname verification
        if self.ca_file:
            try:
                return ssl.create_default_context(cafile=self.ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise UsageError(f"--ca {self.ca_file!r}: cannot load ({exc})") from exc
        return True
