"""The protected routes' pipeline and its checks, run in one listed order (``pipeline``'s
docstring numbers them; docs/architecture.md uses the same numbers).

Every check has one shape. It takes what it judges first (the request; for ``limits`` the
client and address found before it; for ``payload`` the body), then its own slice of the
configuration: as arguments for a function, or bound once per configuration in the
``__init__`` of a class that compiles or keeps something. It raises one
``gateway.errors.GatewayError`` subclass, which the front middleware renders, and returns
only what a later stage needs: nothing, the verified token, or whether the body is gzip.

Modules:

* ``pipeline``: builds each route's handler and runs the stages in order (``build_routes``).
* ``https``: 1, ``check_https``: TLS from the transport, or a trusted proxy's word.
* ``authn``: 3, ``check_bearer``: the bearer token, verified, and the route's scope.
* ``limits``: 4, ``ClientLimits.check``: the client's source ranges and rate limit.
* ``headers``: 5, ``check_content_headers``, then ``read_body``: media type, size, gzip.
* ``signature``: 6, ``SignatureCheck.check``: Adobe's HMAC request signature.
* ``payload``: 7, ``PayloadCheck.check``: the body's shape (``aam-segments`` and others).
* ``fallback``: 8 for ``delivery: fallback``: forward, else spool, inside IRIS's 3 s.
"""
