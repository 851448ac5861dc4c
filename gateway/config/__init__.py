"""The configuration: one YAML file read once into frozen, typed objects.

``load(path)`` returns a ``Settings`` or raises ``ConfigError`` with every problem and its
YAML path (``routes[0].upstream: ...``). Each stage receives only its own part
(``settings.tokens``, ``settings.routes[i]``); nothing re-reads the file per request.

Modules:

* ``model``: the frozen dataclasses, one per section.
* ``loader``: ``load`` and ``load_text``, the top level and the small sections.
* ``listener``: the ``server`` section.
* ``tokens``: the ``tokens`` section.
* ``clients``: the ``clients`` section.
* ``routes``: the ``routes`` section.
* ``redis``: the ``sentinel`` block of ``state`` and ``spool`` (Redis found through Sentinel).
* ``yamlpath``: the YAML reader that keeps every value's path for its errors.
* ``hashes``: the ``scrypt$`` and ``sha256$`` hash strings the YAML holds instead of secrets.
* ``hints``: the near miss an error suggests (``tsl`` for ``tls``).
* ``crosscheck``: warnings that span sections (an issuer the listener cannot be).

This is the bottom layer: it imports nothing else of the gateway but ``errors``.
"""

from gateway.config.loader import load, load_text
from gateway.config.model import (
    AdminSettings,
    ClientSettings,
    LoggingSettings,
    PayloadSchema,
    RateLimitSettings,
    RouteSettings,
    SentinelSettings,
    ServerSettings,
    Settings,
    SignatureSettings,
    SigningKeySettings,
    SpoolSettings,
    StateSettings,
    TLSSettings,
    TokenSettings,
    UpstreamTLSSettings,
)
from gateway.config.yamlpath import ConfigError

__all__ = [
    "AdminSettings",
    "ClientSettings",
    "ConfigError",
    "LoggingSettings",
    "PayloadSchema",
    "RateLimitSettings",
    "RouteSettings",
    "SentinelSettings",
    "ServerSettings",
    "Settings",
    "SignatureSettings",
    "SigningKeySettings",
    "SpoolSettings",
    "StateSettings",
    "TLSSettings",
    "TokenSettings",
    "UpstreamTLSSettings",
    "load",
    "load_text",
]
