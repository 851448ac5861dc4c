"""Everything derived from one configuration, swapped as a whole by a reload (docs/architecture.md).

A ``Runtime`` holds the settings and what is built from them: keys, clients, the token
issuer and verifier (with its cache), the discovery documents, the failed-authentication
guard, the upstream pool and the protected routes' handlers. Requests read
``RuntimeSlot.current`` once and keep that runtime to the end, so a reload replaces all of
it in one assignment for new requests while in-flight ones finish on the old one, whose
upstream pool is closed only once its last request has left.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from gateway.config import Settings
from gateway.forward.upstream import Forwarder
from gateway.oauth.clients import ClientRegistry
from gateway.oauth.discovery import Discovery
from gateway.oauth.keys import KeySet
from gateway.oauth.tokens import TokenIssuer, TokenVerifier
from gateway.observe.metrics import Metrics
from gateway.spool.accept import Spool
from gateway.stages.pipeline import RouteEntry, build_routes
from gateway.state.mirror import FailedAuthGuard, SharedState
from gateway.state.ratelimit import shared_buckets

__all__ = ["Runtime", "RuntimeSlot"]

log = logging.getLogger(__name__)

_POLL_SECONDS = 0.1
# An old runtime whose requests never finish (a stuck upload) is closed after this anyway.
_MAX_DRAIN_SECONDS = 600.0


class Runtime:
    """One configuration's objects, built but not started (``forwarder.start()``);
    raises ConfigError when a key cannot be loaded. ``active`` counts its protected requests
    in flight (and spool deliveries using its forwarder). ``delivery: spool`` routes store
    into the process's ``spool``."""

    __slots__ = ("active", "discovery", "forwarder", "guard", "issuer", "keyset", "registry",
                 "routes", "settings", "verifier")

    def __init__(self, settings: Settings, shared: SharedState, metrics: Metrics,
                 spool: Spool | None = None) -> None:
        tokens = settings.tokens
        self.settings = settings
        self.keyset = KeySet.from_settings(tokens)  # ConfigError names the key
        self.registry = ClientRegistry.from_settings(settings.clients, realm=tokens.realm)
        self.issuer = TokenIssuer(tokens, self.keyset)
        self.verifier = TokenVerifier(tokens, self.keyset, self.registry, shared.revoked)
        self.discovery = Discovery(self.keyset, tokens, settings.clients)
        self.guard = FailedAuthGuard(tokens.failed_auth_per_minute, shared)
        self.forwarder = Forwarder(settings.upstream_tls)
        # The per-client buckets the limits stage builds share the fleet's budget when the
        # state is Redis (ratelimit.shared_buckets; a no-op for SQLite).
        with shared_buckets(shared.ledger):
            self.routes: dict[str, RouteEntry] = build_routes(settings, self.verifier,
                                                              self.forwarder, metrics, spool)
        self.active = 0

    def counters(self) -> dict[str, int]:
        """Counts kept by this runtime's objects, for /metrics (``metrics.CounterSource``)."""
        counts = self.verifier.counters()
        for kind, value in self.forwarder.errors.items():
            counts[f"gateway_upstream_errors_total:{kind}"] = value
        return counts


class RuntimeSlot:
    """The current runtime, and the retirement of the ones it replaced."""

    def __init__(self, runtime: Runtime, metrics: Metrics, fixed_paths: Iterable[str]) -> None:
        self.current = runtime
        self._metrics = metrics
        self._fixed = tuple(fixed_paths)
        # Route labels for metrics, kept current in place: the access logger holds this dict.
        self.labels: dict[str, str] = {}
        self._retiring: set[asyncio.Task[None]] = set()
        metrics.attach(runtime)
        self._relabel()

    async def start(self) -> None:
        await self.current.forwarder.start()

    def swap(self, runtime: Runtime) -> None:
        """Make ``runtime`` (started) current; the old one retires when it is idle."""
        old, self.current = self.current, runtime
        self._metrics.attach(runtime)
        self._relabel()
        task = asyncio.get_running_loop().create_task(self._retire(old))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def close(self) -> None:
        """At shutdown, after the listeners drained: close every pool still open."""
        for task in list(self._retiring):
            task.cancel()
        await asyncio.gather(*self._retiring, return_exceptions=True)
        await self.current.forwarder.close()

    async def _retire(self, old: Runtime) -> None:
        try:
            # Polled rather than signalled: the request path stays a bare += and -=.
            for _ in range(int(_MAX_DRAIN_SECONDS / _POLL_SECONDS)):
                if not old.active:
                    break
                await asyncio.sleep(_POLL_SECONDS)
        finally:
            await old.forwarder.close()
            self._metrics.detach(old)

    def _relabel(self) -> None:
        labels = {path: path for path in self._fixed}
        labels.update({route.path: route.path for route in self.current.settings.routes})
        self.labels.clear()
        self.labels.update(labels)
