"""An OAuth 2.0 enforcing gateway for Adobe Audience Manager's real-time outbound transfers.

It issues RFC 9068 JWT access tokens to IRIS (client-credentials grant), verifies them on
every request to the partner's protected routes, enforces HTTPS and headers, validates
``aam-segments`` payloads and forwards what is valid to the partner's legacy backend.

Modules and packages, each importing only those below it (``tests/unit/test_layers.py``):

* ``cli``: the ``gateway`` command; ``__main__``: ``python -m gateway``.
* ``tools``: the sample backend, the IRIS simulator, the demo, development certificates.
* ``serve``: the listeners, the application, workers, reload, the admin listener.
* ``stages``: the protected routes' checks, run in one listed order.
* ``spool``: store and forward (SQLite, or Redis Streams).
* ``oauth``: the token endpoint, clients, tokens, keys, revocation, discovery.
* ``forward``: the way to the backend (pool, HTTP/1.1 client, headers).
* ``state``: what workers and machines share (revocations, failure counts, limits).
* ``observe``: metrics, the access log, logs, trace context, the status page's model.
* ``config``: the YAML read once into frozen settings.
* ``errors``: the one error hierarchy and its renderer.
* ``keys``: every ``AppKey``, ``RequestKey`` and ``ResponseKey``.
* ``mediatype``: ``Content-Type`` and ``Accept-Encoding`` parsing.
* ``peer``: the caller's address, behind a trusted proxy or not.
"""

__version__ = "0.1.0"
