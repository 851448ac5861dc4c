"""Serving: the listeners, the application and the processes that run it.

Modules:

* ``server``: ``gateway serve``; binds the public, plain-HTTP and admin listeners, handles
  signals (SIGHUP reloads, SIGTERM drains) and runs one process.
* ``supervisor``: ``server.workers`` above one; starts, watches and restarts the workers
  and serves their summed metrics on the admin listener.
* ``app``: the public ``web.Application``: the front middleware and the routes.
* ``oauth_routes``: the OAuth endpoints wired into the app.
* ``runtime``: everything a reload replaces, built from one ``Settings`` and swapped whole.
* ``reload``: SIGHUP: re-read, validate, build a new runtime, swap it in or keep the old.
* ``guards``: the HTTP/1.1 protocol guards below aiohttp (connection caps, header and
  slow-client timeouts, parse errors answered as JSON, HSTS).
* ``reads``: one read buffer lent to every connection of the listener.
* ``malloc`` and ``collector``: glibc's allocator and Python's collector, set for a
  long-running server.
* ``tls``: the TLS contexts of the listeners.
* ``admin``: ``/healthz``, ``/readyz`` and ``/metrics``.

The top layer below ``cli``: it may import every other package.
"""
