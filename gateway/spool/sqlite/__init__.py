"""``spool.backend: sqlite``: the queue in one local SQLite file per machine.

Modules:

* ``backend``: ``SqliteBackend``, this backend's ``base.SpoolBackend``.
* ``statements``: the file's schema and every statement (claim, finish, dead letters).
* ``store``: ``SqliteStore``, the file as a ``base.SpoolStore``.
* ``writer``: the writer thread; groups commits so that a push is on disk before its
  ``200``.
* ``reader``: one long-lived read connection per process (``/readyz``, ``/metrics``, the
  status page, ``gateway spool``).
* ``deliverer``: the sending half (leases a route, forwards in arrival order, retries with
  backoff, dead-letters what the backend refuses).
* ``lanes``: one route's delivery run, its next batch claimed while one is in flight.
* ``thread``: the deliverer's own thread and event loop.

The Redis backend uses ``store``, ``writer`` and ``statements`` for its fallback file.
"""
