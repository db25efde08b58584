"""One error shape for every answer that is not a success: `{"error": {"code", "message"}}`."""

from __future__ import annotations

import logging

from flask import Flask, g, jsonify
from marshmallow import ValidationError
from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException

from models.errors import StoreError

log = logging.getLogger("authz")
UNAVAILABLE_MESSAGE = (
    "the database cannot be reached: nothing was decided, and a change in progress was rolled back "
    "(unless the connection dropped while it was being committed: read before repeating it)"
)


class ApiError(Exception):
    """An error raised by the HTTP layer itself (authentication, bad body)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_body(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


def describe_validation_error(error: ValidationError) -> str:
    """Name every field marshmallow refused, as `resource.owner: Missing data for required field.`."""
    parts: list[str] = []

    def walk(messages: object, path: list[str]) -> None:
        if isinstance(messages, dict):
            for key, value in messages.items():
                walk(value, [*path, str(key)] if key != "_schema" else path)
        elif isinstance(messages, list) and messages and all(isinstance(m, str) for m in messages):
            where = ".".join(path) or "body"
            parts.append(f"{where}: {' '.join(messages)}")
        elif isinstance(messages, list):
            for index, value in enumerate(messages):
                walk(value, [*path, str(index)])
        else:
            parts.append(f"{'.'.join(path) or 'body'}: {messages}")

    walk(error.messages, [])
    return "; ".join(parts) or "the request is not valid"


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(error: ApiError):
        return jsonify(error_body(error.code, error.message)), error.status

    @app.errorhandler(StoreError)
    def _store_error(error: StoreError):
        return jsonify(error_body(error.code, error.message)), error.status

    @app.errorhandler(ValidationError)
    def _validation_error(error: ValidationError):
        return jsonify(error_body("invalid_request", describe_validation_error(error))), 400

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        code = (error.name or "error").lower().replace(" ", "_")
        return jsonify(error_body(code, error.description or error.name)), error.code or 500

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    def _database_error(error: Exception):
        log.warning("database error: %s", type(error).__name__, extra={"fields": {"request_id": g.get("request_id")}})
        return jsonify(error_body("unavailable", UNAVAILABLE_MESSAGE)), 503

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        log.exception("unexpected error", extra={"fields": {"request_id": g.get("request_id")}})
        return jsonify(error_body("internal_error", "an unexpected error occurred; nothing was decided")), 500
