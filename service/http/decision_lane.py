"""The decision lane: `POST /v1/authorize` answered without Flask, for the plain request every page sends.

SPEC "Running it" asks `/v1/authorize` to serve at least what a trivial Flask
endpoint serves, with a p99 within 1.5× the service's own `/healthz`. A Flask
request costs about 100 µs before any work (its context, URL matching, hooks,
response object): more than the decision itself. So this WSGI middleware, in
front of the Flask app, answers the one request that matters most when it is
plainly valid — a decision body `quick_bodies.authorize_body` accepts, without
`explain` or `as_of_revision`, no query string, from a key holding the
endpoint's scope — through the same functions the Flask route uses: the one
body reader (`json_body.parse`), the size limits, `authenticate`, and
`answer_authorize` (the decision, its metrics and its decision-log record).
Its answer, status and headers are the route's, byte for byte; its request is
counted and logged as the route's.

Anything else — another path or method, a query string, a body of another
shape, any refusal or error on the way (bad key, unknown action, database
down) — goes to the Flask app with the body it sent, and is answered there,
where every error has its one shape. Nothing is recorded before the decision
is made, so a request handed over is recorded once, by the route.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from service.core.consistency import LATEST
from service.core.decision_log import Asker
from service.core.runtime import Runtime
from service.http import json_body, quick_bodies
from service.http.auth import authenticate
from service.http.declare import ENDPOINTS
from service.http.hooks import record_request
from service.http.limits import refuse_oversized
from service.http.logs import REQUEST_ID_HEADER, request_id
from service.http.routes.decisions import answer_authorize

PATH = "/v1/authorize"
_HEADERS = [("Content-Type", "application/json")]


class DecisionLane:
    """WSGI middleware: plain `POST /v1/authorize` answered here, every other request by `app`."""

    def __init__(self, app: Callable, runtime: Runtime) -> None:
        self.app = app  # the Flask app's WSGI callable: everything this lane does not answer
        self.runtime = runtime
        declared = next(e for e in ENDPOINTS if e.rule == PATH and e.method == "POST")
        self.scopes = declared.scopes
        self.status = declared.status
        self.status_line = f"{declared.status} {HTTPStatus(declared.status).phrase}"

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if (
            environ.get("PATH_INFO") != PATH
            or environ.get("REQUEST_METHOD") != "POST"
            or environ.get("QUERY_STRING")
            or "HTTP_TRANSFER_ENCODING" in environ
        ):
            return self.app(environ, start_response)
        started = time.perf_counter()
        try:
            raw = _read_body(environ)
        except (OSError, ValueError):  # the client went away: the route finds the body cut short (400)
            raw = b""
        if raw is None:  # no declared length, or too long a one: the route reads (and refuses) it
            return self.app(environ, start_response)
        try:
            answered = self._answer(environ, raw)
        except Exception:  # noqa: BLE001 - every refusal and error is the route's to answer, in its shape
            answered = None
        if answered is None:
            environ["wsgi.input"] = io.BytesIO(raw)  # the body, as sent, for the route to read
            return self.app(environ, start_response)
        identifier, caller_key, encoded = answered
        start_response(self.status_line, [*_HEADERS, ("Content-Length", str(len(encoded))), (REQUEST_ID_HEADER, identifier)])
        record_request(identifier, "POST", PATH, self.status, time.perf_counter() - started, caller_key)
        return [encoded]

    def _answer(self, environ: dict, raw: bytes) -> tuple[str, str, bytes] | None:
        """The request id, the caller's key id and the encoded answer; None for the route to answer."""
        refuse_oversized(environ)
        body = quick_bodies.authorize_body(json_body.parse(raw, environ.get("CONTENT_TYPE")))
        if body is None or body["explain"] or body.get("consistency", LATEST).kind == "as_of":
            return None
        caller = authenticate(self.runtime.keys, environ.get("HTTP_AUTHORIZATION"), self.scopes)
        identifier = request_id(environ.get("HTTP_X_REQUEST_ID"))
        answer = answer_authorize(self.runtime, Asker(identifier, caller.name, PATH), body)
        return identifier, caller.key_id, json.dumps(answer).encode()


def _read_body(environ: dict) -> bytes | None:
    """Exactly the declared Content-Length of bytes (at most the largest body taken), or None."""
    declared: Any = environ.get("CONTENT_LENGTH")
    if not declared or not declared.isascii() or not declared.isdigit() or int(declared) > json_body.MAX_BODY_BYTES:
        return None
    return environ["wsgi.input"].read(int(declared))
