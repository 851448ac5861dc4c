"""Store and forward: a push is stored durably, answered ``200``, and delivered later.

Modules:

* ``base``: the interface every backend implements (``SpoolBackend``, ``SpoolStore``,
  ``SpoolDeliverer``), ``SpoolError`` and the shared types (``Entry``, ``RouteCounts``,
  ``SpoolView``, ``DeliveryRuntime``).
* ``factory``: ``backend_for``, the one place the configured backend is chosen.
* ``accept``: the accepting half, the same on every backend (``Spool.accept``, ``Wake``).
* ``attempt``: one delivery try and what it came to, with the backoff: the same rules for
  every deliverer.
* ``status``: ``/readyz``'s member and ``/metrics``' gauges.
* ``commands``: ``gateway spool stats|list|retry|purge``.
* ``sqlite/``: ``spool.backend: sqlite``, a local file per machine.
* ``redis/``: ``spool.backend: redis``, Redis Streams shared by the fleet.

Imports ``forward``, ``state``, ``config`` and ``errors``; never ``serve``.
"""
