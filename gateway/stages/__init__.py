"""The protected routes' pipeline and its checks, run in one listed order.

Each stage is a pure check that raises one typed error from ``gateway.errors`` or lets the
request pass; the first failure answers.

Modules:

* ``pipeline``: builds a route's handler from its settings and runs the stages in order,
  then forwards or spools.
* ``https``: TLS from the transport, or ``X-Forwarded-Proto`` from a trusted proxy.
* ``authn``: the bearer token, verified and cached.
* ``limits``: the client's source ranges and rate limit.
* ``headers``: media type, body size, gzip.
* ``signature``: Adobe's HMAC request signature.
* ``payload``: the body's shape (``aam-segments`` and the other profiles).
"""
