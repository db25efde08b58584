"""The auditor's error pages: every refusal or failure on `/audit/` is a page, with its status.

Like the JSON API (`service/http/errors.py`), this edge decides which status answers each
error of the core and of storage; its pages say it in words. An unreadable database is a
503 page, never a page of possibly stale data.
"""

from __future__ import annotations

import logging

from flask import Blueprint, g, render_template
from werkzeug.exceptions import HTTPException

from models.errors import DATABASE_ERRORS, NotFound, StorageError, Unavailable
from service.core.errors import Forbidden, MissingScope, Refused, Unauthenticated, Unenforceable

log = logging.getLogger("authz")
REALM = 'Basic realm="authz audit"'
SIGN_IN = "Sign in with an API key that has the audit scope: any user name, the key as the password."
# (status, title) of each error the pages can meet, by class; anything else the core refuses is a 400.
PAGES: dict[type[Exception], tuple[int, str]] = {
    MissingScope: (403, "Not allowed"),
    Forbidden: (403, "Not allowed"),
    NotFound: (404, "Not found"),
    Unavailable: (503, "The database cannot be reached"),
    Unenforceable: (409, "This policy cannot be enforced exactly"),
}


def render_page(template: str, status: int = 200, **context) -> tuple[str, int]:
    return render_template(f"audit/{template}", **context), status


def error_page(status: int, title: str, message: str, headers: dict | None = None):
    body = render_template("audit/error.html", status=status, title=title, message=message)
    return body, status, headers or {}


def register_error_pages(pages: Blueprint) -> None:
    @pages.errorhandler(Unauthenticated)
    def _sign_in(error: Unauthenticated):
        return error_page(401, "Sign in", SIGN_IN, {"WWW-Authenticate": REALM})

    @pages.errorhandler(Refused)
    @pages.errorhandler(StorageError)
    def _refused(error: Refused | StorageError):
        status, title = next(
            (PAGES[kind] for kind in type(error).__mro__ if kind in PAGES), (400, "Bad request")
        )
        return error_page(status, title, error.message)

    def _database_error(error: Exception):
        log.warning(
            "database error on an audit page: %s", type(error).__name__,
            extra={"fields": {"request_id": g.get("request_id")}},
        )
        message = "The database cannot be read, so nothing is shown rather than something possibly out of date."
        return error_page(503, "The database cannot be reached", message)

    for database_error in DATABASE_ERRORS:
        pages.register_error_handler(database_error, _database_error)

    @pages.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        return error_page(error.code or 500, error.name, error.description or error.name)

    @pages.errorhandler(Exception)
    def _unexpected(error: Exception):
        log.exception("unexpected error on an audit page", extra={"fields": {"request_id": g.get("request_id")}})
        return error_page(500, "Unexpected error", "An unexpected error occurred; it has been logged.")
