"""Forwarding to the partner's backend.

Modules:

* ``upstream``: the per-route forwarder: failover between upstreams, timeouts, the
  backend's answer relayed (502 on connect failure, 504 on timeout).
* ``h1pool``: a small HTTP/1.1 client with a keep-alive pool per upstream (httptools).
* ``headers``: the header block a forwarded request carries, built in one place.

Imports only ``config``, ``errors``, ``keys`` and ``mediatype``.
"""
