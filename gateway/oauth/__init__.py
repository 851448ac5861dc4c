"""OAuth 2.0: issuing, verifying, revoking and describing access tokens.

Modules:

* ``token_endpoint``: ``POST /oauth2/token``, the client-credentials grant (RFC 6749 §4.4).
* ``clients``: who is calling: Basic in the RFC 6749 §2.3.1 form or Adobe's opaque form.
* ``hashing``: the slow secret hashes, on a small bounded thread pool off the event loop.
* ``tokens``: RFC 9068 JWT access tokens, minted and verified.
* ``keys``: the signing keys and the JWKS (RFC 7517).
* ``revocation``: revocation (RFC 7009) and introspection (RFC 7662).
* ``discovery``: the authorization server metadata (RFC 8414).
* ``commands``: ``gateway keys generate``, ``client add`` and ``hash-secret``.
"""
