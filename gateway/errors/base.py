"""The base of the hierarchy: an error code, a status and a description checked against
RFC 6749's character set."""

from __future__ import annotations

import re
from typing import ClassVar

__all__ = ["NO_STORE_HEADERS", "GatewayError"]

# RFC 6749 §5.2: error_description "MUST NOT include characters outside the set
# %x20-21 / %x23-5B / %x5D-7E" (printable ASCII without '"' and '\').
_DESCRIPTION_CHARS = re.compile(r"^[\x20-\x21\x23-\x5b\x5d-\x7e]*$")

NO_STORE_HEADERS = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class GatewayError(Exception):
    """Base of every error the gateway answers with; never raised itself."""

    error: ClassVar[str] = "server_error"
    status_code: ClassVar[int] = 500
    description: ClassVar[str] = "The gateway could not handle the request."
    # False for an answer that is no OAuth error (a 404): its body then has no ``error``.
    body_names_error: ClassVar[bool] = True

    def __init__(
        self,
        description: str | None = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        text = description if description is not None else self.description
        if not _DESCRIPTION_CHARS.match(text):
            # SECURITY: a description holding quotes or backslashes could break out of
            # WWW-Authenticate; such text is a bug in the caller, never sent as it is.
            text = type(self).description
        super().__init__(text)
        self.text = text
        self.extra_headers = dict(headers or {})

    def headers(self) -> dict[str, str]:
        return dict(self.extra_headers)
