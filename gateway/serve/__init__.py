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
* ``framing``: request framing refused although the parser takes it (transfer codings,
  targets, ``Upgrade``).
* ``connections``: the connection caps and deadlines ``guards`` enforces.
* ``acceptor``: the public TLS listener's accept loop: handshakes counted against the
  caps, running out of open files survived.
* ``admin_guard``: the admin listener's Host allow-list and connection cap.
* ``expect``: ``Expect: 100-continue`` answered only once the checks have passed.
* ``reads``: one read buffer lent to every connection of the listener.
* ``malloc``: glibc's allocator, set for a long-running server.
* ``collector``: Python's garbage collector, with start-up's objects frozen out of it.
* ``tls``: the TLS contexts of the listeners.
* ``bind``: binding the listeners, with errors that name the configuration key.
* ``pidfile``: ``server.pid_file``, locked while the gateway runs.
* ``control``: ``gateway check-config``, ``reload`` and ``stop``.
* ``admin``: ``/livez`` (``/healthz``), ``/readyz`` and ``/metrics``.
* ``readiness``: ``/readyz``'s verdict.
* ``status_routes``: the admin listener's status page and its dead-letter actions.
* ``status_spool``: the status page's one way into the spool's dead letters.

The top layer below ``cli``: it may import every other package.
"""
