"""Logging: one JSON object per line on stdout (``logging.format: json``) or text for humans.

Application records go through the same ``LineWriter`` as the access log
(``accesslog.py``), so both share one format, one stream and one order. Records carry a
stable ``reason_id``. Callers log identifiers (client id, request id), never tokens,
credentials or secrets; as a second line of defence anything shaped like a JWT or an
``Authorization`` value is masked before a record is written. Every text field has its
non-printing characters escaped (``accesslog.escape_controls``; extras in the text format
are ``repr``-ed, which escapes them too), so no record can break into a second line.
"""

from __future__ import annotations

import atexit
import json
import logging
import re
from typing import Any

from gateway.config import LoggingSettings
from gateway.observe.accesslog import LineWriter, escape_controls, iso_time, stdout_writer

__all__ = ["JsonFormatter", "configure_logging", "redact"]

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
# SECURITY: a compact JWS (three base64url parts, the first a JSON header) and the value
# after an HTTP authentication scheme.
_SECRETS = re.compile(
    r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"
    r"|(?i:\b(?:bearer|basic)\s+)[A-Za-z0-9._~+/=-]{8,}"
)


def redact(text: str) -> str:
    return _SECRETS.sub("[redacted]", text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": iso_time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": escape_controls(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD:
                entry[key] = escape_controls(value) if isinstance(value, str) else value
        if record.exc_info and record.exc_info[0] is not None:
            entry["error_type"] = record.exc_info[0].__name__
        return redact(json.dumps(entry, default=str, separators=(",", ":")))


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extra = " ".join(f"{k}={v!r}" for k, v in record.__dict__.items() if k not in _STANDARD)
        line = f"{iso_time(record.created)} {record.levelname.lower()} {record.name} " \
               f"{escape_controls(record.getMessage())}" + (f" {extra}" if extra else "")
        if record.exc_info and record.exc_info[0] is not None:
            line += f" error_type={record.exc_info[0].__name__}"
        return redact(line)


class _WriterHandler(logging.Handler):
    def __init__(self, writer: LineWriter) -> None:
        super().__init__()
        self.writer = writer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.writer.write((self.format(record) + "\n").encode("utf-8", "replace"))
        except Exception:
            self.handleError(record)


def configure_logging(settings: LoggingSettings, writer: LineWriter | None = None) -> None:
    writer = writer or stdout_writer()
    handler = _WriterHandler(writer)
    handler.setFormatter(JsonFormatter() if settings.format == "json" else _TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level.upper())
    # aiohttp's own access logger is replaced by ours (accesslog.py).
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    atexit.register(writer.flush)
