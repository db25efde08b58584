"""Why storage could not answer: plain exceptions with a `code` and a message, no HTTP status.

Each edge of the service turns them into its own answer (the JSON API's statuses are in
`service/http/errors.py`, the auditor's error pages in `service/audit/errors.py`).
"""

from __future__ import annotations

from sqlalchemy.exc import InterfaceError, OperationalError

# What a lost or unreachable database raises from any statement: the edges answer "unavailable".
DATABASE_ERRORS: tuple[type[Exception], ...] = (OperationalError, InterfaceError)


class StorageError(Exception):
    """A lookup or a change storage refused; `code` names why, for machines."""

    code = "storage_error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class NotFound(StorageError):
    """No such account, member, support agent or API key."""

    code = "not_found"


class Conflict(StorageError):
    """The change collides with what is stored (a concurrent change, a taken id); nothing was changed."""

    code = "conflict"


class Unavailable(StorageError):
    """The database cannot be reached: nothing is decided and nothing is written."""

    code = "unavailable"


class RevisionAhead(StorageError):
    """A revision was asked for that the change log has not reached."""

    code = "revision_ahead"
