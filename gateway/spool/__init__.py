"""Store and forward: a push is stored durably, answered ``200``, and delivered later.

Modules:

* ``backend``: the ``SpoolStore`` interface both backends implement; chooses between them.
* ``writer``: the accepting half; one writer thread groups commits so that a push is on
  disk before its ``200``.
* ``local``: the SQLite file as a ``SpoolStore``; ``store``: its schema and every statement
  (claim, finish, dead letters); ``deliverer``: its sending half (leases a route, forwards
  in arrival order, retries with backoff, dead-letters what the backend refuses).
* ``stream``, ``stream_scripts``, ``stream_admin``: ``spool.backend: redis``, the queue in
  Redis Streams shared by the fleet; ``stream_deliverer``: its sending half (a lease per
  route, ``XAUTOCLAIM``); ``stream_fallback``: the local file while Redis is away;
  ``stream_durability``: what Redis's persistence can keep, checked at start.
* ``status``: the read view behind ``/metrics``, ``/readyz`` and ``gateway spool stats``.
* ``commands``: ``gateway spool stats|list|retry|purge``.

Imports ``forward``, ``state``, ``config`` and ``errors``; never ``serve``.
"""
