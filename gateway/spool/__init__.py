"""Store and forward: a push is stored durably, answered ``200``, and delivered later.

Modules:

* ``writer``: the accepting half; one writer thread groups commits so that a push is on
  disk before its ``200``.
* ``store``: the SQLite schema and every statement on it (claim, finish, dead letters).
* ``deliverer``: the sending half; leases a route, forwards in arrival order, retries with
  backoff, dead-letters what the backend refuses.
* ``status``: the read view behind ``/metrics``, ``/readyz`` and ``gateway spool stats``.
* ``commands``: ``gateway spool stats|list|retry|purge``.

Imports ``forward``, ``config`` and ``errors``; never ``serve``.
"""
