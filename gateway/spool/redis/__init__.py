"""``spool.backend: redis``: the queue in Redis Streams, shared by the fleet.

Modules:

* ``backend``: ``RedisBackend``, this backend's ``base.SpoolBackend``.
* ``streams``: ``StreamStore``, the streams as a ``base.SpoolStore``, and the deliverer's
  operations on them (its client is ``state/redis_connection.py``'s).
* ``scripts``: the Lua scripts, one per change, and the keys they use.
* ``admin``: the reading and operating half (views, entries, requeue, purge).
* ``deliverer``: the sending half (a lease per route, ``XAUTOCLAIM``).
* ``fallback``: the fallback file that takes pushes while Redis cannot, and moves them to
  the streams once it can (the SQLite backend's store and writer).
* ``health``: what the process knows of Redis now, refreshed every second in the
  background (the accept path and ``/readyz`` read it; it follows a Sentinel promotion).
* ``durability``: what Redis's persistence can keep, checked at start.
"""
