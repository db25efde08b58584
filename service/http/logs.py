"""Structured JSON logs, one line per request, with a request id echoed in `X-Request-Id`.

What is logged about a request: its id, method, route pattern (never the raw
path or query string: they hold account and user ids), status, duration and
the API key's id (never the key). Bodies are never logged.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
import uuid

from flask import Flask, g, request

REQUEST_ID_HEADER = "X-Request-Id"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
log = logging.getLogger("authz.requests")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


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


def request_logging(app: Flask) -> None:
    """Give every request an id (the caller's `X-Request-Id` if well-formed), echo it, log the request.

    The duration is timed from `g.started`, which `metrics.instrument` sets first.
    """
    configure_logging()

    @app.before_request
    def _identify() -> None:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = incoming if _VALID_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex

    @app.after_request
    def _log(response):
        request_id = g.get("request_id") or uuid.uuid4().hex
        response.headers[REQUEST_ID_HEADER] = request_id
        caller = g.get("caller")
        fields = {
            "request_id": request_id,
            "method": request.method,
            "route": request.url_rule.rule if request.url_rule is not None else "unmatched",
            "status": response.status_code,
            "duration_ms": round((time.perf_counter() - g.get("started", time.perf_counter())) * 1000, 3),
            "api_key": caller.key_id if caller is not None else None,
        }
        level = logging.WARNING if response.status_code >= 500 else logging.INFO
        log.log(level, "request", extra={"fields": fields})
        return response
