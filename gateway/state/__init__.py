"""What workers and instances share: revoked token ids, failed-authentication counters and
the per-client rate limits.

Modules:

* ``base``: the interface a backend implements (``StateBackend``, ``BroadcastingState``),
  ``StateError`` and ``StateEvent``.
* ``factory``: ``open_state``, the one place the configured backend is chosen.
* ``memory``: ``MemoryState``, the interface for one process without a file (tests).
* ``sqlite``: the embedded backend, one file for the workers of one machine.
* ``redis``: the backend for several machines (``state.backend: redis``).
* ``redis_connection``: the one Redis client built from the configuration (TLS, masked
  errors, circuit breaker), shared with the spool's streams.
* ``dbfile``: SQLite files created private (0600), for the state and the spool.
* ``mirror``: the in-memory mirror the hot path reads, so a request never waits on the
  backend; it writes back and resubscribes after an outage.
* ``ratelimit``: token buckets and fixed windows, counted locally.
"""
