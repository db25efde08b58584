"""What every request goes through around its endpoint: an id, the size limits, metrics and its log line.

One hook before and one after, for the JSON API and the auditor's pages alike:
Flask calls each hook through `ensure_sync` and every lookup of `request` or
`g` goes through a context variable, so on the decision endpoints five small
hooks cost more than the work they did.
"""

from __future__ import annotations

import time

from flask import Flask, Response, g, request

from service.http.limits import refuse_oversized
from service.http.logs import REQUEST_ID_HEADER, configure_logging, log_request, request_id
from service.http.metrics import count_request


def install_hooks(app: Flask) -> None:
    """Time and identify every request (the caller's `X-Request-Id` if well-formed), refuse an oversized
    target or headers (414, 431: counted and logged like any answer), then count, log and echo the id."""
    configure_logging()

    @app.before_request
    def _arrive() -> None:
        g.started = time.perf_counter()
        environ = request.environ
        g.request_id = request_id(environ.get("HTTP_X_REQUEST_ID"))
        refuse_oversized(environ)

    @app.after_request
    def _leave(response: Response) -> Response:
        seconds = time.perf_counter() - g.get("started", time.perf_counter())
        identifier = g.get("request_id") or request_id(None)
        response.headers[REQUEST_ID_HEADER] = identifier
        rule = request.url_rule
        route = rule.rule if rule is not None else "unmatched"
        caller = g.get("caller")
        record_request(
            identifier, request.method, route, response.status_code, seconds,
            caller.key_id if caller is not None else None,
        )
        return response


def record_request(request_id: str, method: str, route: str, status: int, seconds: float, api_key: str | None) -> None:
    """Count and log one request answered: by the hook above, or by the decision lane in front of Flask."""
    count_request(route, status, seconds)
    log_request(request_id, method, route, status, seconds, api_key)
