"""One error shape for every answer that is not a success: `{"error": {"code", "message"}}`, and its status.

The core and storage raise plain exceptions with a code (`service.core.errors`,
`models.errors`); this is where each becomes an HTTP status.
"""

from __future__ import annotations

import logging

from flask import Flask, g, jsonify
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from models.errors import DATABASE_ERRORS, Conflict, NotFound, RevisionAhead, StorageError, Unavailable
from service.core.errors import (
    BreaksInvariant,
    Forbidden,
    InvalidRequest,
    MissingScope,
    Refused,
    Unauthenticated,
    Unenforceable,
)
from service.core.inputs import describe_validation_error

log = logging.getLogger("authz")
UNAVAILABLE_MESSAGE = (
    "the database cannot be reached: nothing was decided, and a change in progress was rolled back "
    "(unless the connection dropped while it was being committed: read before repeating it)"
)


# The status of each error the core answers, by class (the most specific class that is listed wins).
STATUSES: dict[type[Exception], int] = {
    InvalidRequest: 400,
    RevisionAhead: 400,
    Unauthenticated: 401,
    MissingScope: 403,
    Forbidden: 403,
    NotFound: 404,
    BreaksInvariant: 409,
    Unenforceable: 409,
    Conflict: 409,
    Unavailable: 503,
}


# The error codes of werkzeug's refusals where its name is not the code this API uses elsewhere.
HTTP_CODES = {413: ("body_too_large", "the body is larger than the service accepts (1 MB)")}


def status_of(error: Exception) -> int:
    """The HTTP status answering `error` (400 for a refusal not listed)."""
    return next((STATUSES[kind] for kind in type(error).__mro__ if kind in STATUSES), 400)


class ApiError(Exception):
    """An error raised by the HTTP layer itself (authentication, bad body)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_body(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(error: ApiError):
        return jsonify(error_body(error.code, error.message)), error.status

    @app.errorhandler(Refused)
    @app.errorhandler(StorageError)
    def _refused(error: Refused | StorageError):
        return jsonify(error_body(error.code, error.message)), status_of(error)

    @app.errorhandler(ValidationError)
    def _validation_error(error: ValidationError):
        return jsonify(error_body("invalid_request", describe_validation_error(error))), 400

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        """werkzeug's own refusals (404, 405, 413...) in the one error shape, with their headers (405: `Allow`)."""
        code, message = HTTP_CODES.get(error.code) or ((error.name or "error").lower().replace(" ", "_"), None)
        response = jsonify(error_body(code, message or error.description or error.name))
        response.status_code = error.code or 500
        for name, value in error.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    def _database_error(error: Exception):
        log.warning("database error: %s", type(error).__name__, extra={"fields": {"request_id": g.get("request_id")}})
        return jsonify(error_body("unavailable", UNAVAILABLE_MESSAGE)), 503

    for database_error in DATABASE_ERRORS:
        app.register_error_handler(database_error, _database_error)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        log.exception("unexpected error", extra={"fields": {"request_id": g.get("request_id")}})
        return jsonify(error_body("internal_error", "an unexpected error occurred; nothing was decided")), 500
