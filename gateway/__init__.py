"""An OAuth 2.0 enforcing gateway for Adobe Audience Manager's real-time outbound transfers.

It issues RFC 9068 JWT access tokens to IRIS (client-credentials grant), verifies them on
every request to the partner's protected routes, enforces HTTPS and headers, validates
``aam-segments`` payloads and forwards what is valid to the partner's legacy backend.
"""

__version__ = "0.1.0"
