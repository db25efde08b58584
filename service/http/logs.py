"""Structured JSON logs, one line per request, with a request id echoed in `X-Request-Id`.

What is logged about a request: its id, method, route pattern (never the raw
path or query string: they hold account and user ids), status, duration and
the API key's id (never the key). Bodies are never logged.

Every request pays for its line, so it is made cheaply: the request id is a
per-process random prefix and a counter (unique without a system call), the
timestamp's text is made once a second, and the line is encoded once.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import secrets
import sys
import time

REQUEST_ID_HEADER = "X-Request-Id"
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
log = logging.getLogger("authz.requests")
_encode = json.JSONEncoder(ensure_ascii=False).encode


class JsonFormatter(logging.Formatter):
    _second = -1
    _stamp = ""

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:  # the date and time to the second, formatted once a second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        entry = {
            "ts": f"{self._stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return _encode(entry)


def configure_logging() -> None:
    """Send the `authz` loggers to stderr as JSON lines (once per process)."""
    root = logging.getLogger("authz")
    if any(isinstance(handler.formatter, JsonFormatter) for handler in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(os.environ.get("AUTHZ_LOG_LEVEL", "INFO").upper())
    root.propagate = False


class _RequestIds:
    """Ids unique across processes and restarts: 16 random hex digits drawn per process, then a counter."""

    def __init__(self) -> None:
        self._draw()
        os.register_at_fork(after_in_child=self._draw)  # a forked worker must not repeat its parent's ids

    def _draw(self) -> None:
        self._prefix = secrets.token_hex(8)
        self._counter = itertools.count(1)

    def new(self) -> str:
        return f"{self._prefix}{next(self._counter):016x}"


_request_ids = _RequestIds()


def request_id(incoming: str | None) -> str:
    """The caller's `X-Request-Id` if it is well-formed, else a new id."""
    if incoming and _VALID_REQUEST_ID.fullmatch(incoming):
        return incoming
    return _request_ids.new()


def log_request(request_id: str, method: str, route: str, status: int, seconds: float, api_key: str | None) -> None:
    """The request's line: at INFO, or WARNING for a 5xx."""
    level = logging.WARNING if status >= 500 else logging.INFO
    if log.isEnabledFor(level):
        fields = {
            "request_id": request_id,
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
            "api_key": api_key,
        }
        # Made and handled as `log.log` would, less its search of the stack for the caller's line.
        log.handle(log.makeRecord(log.name, level, __file__, 0, "request", (), None, extra={"fields": fields}))
