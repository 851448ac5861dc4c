"""What workers and instances share: revoked token ids, failed-authentication counters and
the per-client rate limits.

Modules:

* ``sqlite``: the embedded backend, one file for the workers of one machine.
* ``redis``: the backend for several machines (``state.backend: redis``).
* ``mirror``: the in-memory mirror the hot path reads, so a request never waits on the
  backend; it writes back and resubscribes after an outage.
* ``ratelimit``: token buckets and fixed windows, counted locally.
"""
