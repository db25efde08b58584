"""Why the core refused a request: plain exceptions with a `code` and a message, no HTTP status.

Storage's own (`models.errors`: not found, a concurrent change, unavailable, a revision
ahead) pass through the core as they are. Each edge maps both kinds to its own answer:
the JSON API in `service/http/errors.py`, the auditor's pages in `service/audit/errors.py`.
"""

from __future__ import annotations

from models.errors import StorageError


class Refused(Exception):
    """A request the core will not carry out; `code` names why, for machines."""

    code = "refused"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidRequest(Refused):
    """Something the request names makes no sense to the core: an unknown action, a page token it never gave."""

    code = "invalid_request"


class Unauthenticated(Refused):
    """No API key, or not a valid one."""

    code = "unauthenticated"


class MissingScope(Refused):
    """The API key is valid but lacks the scope the request needs."""

    code = "missing_scope"


class Forbidden(Refused):
    """The acting user lacks the permission the change (or the read) needs."""

    code = "forbidden"


class BreaksInvariant(Refused):
    """The change would break one of the invariants of the data; nothing was changed. `code` names which."""

    code = "conflict"


class Unenforceable(Refused):
    """The policy a past decision would need can no longer be enforced exactly (this version refuses it)."""

    code = "policy_not_enforceable"


# Every error the core answers with a code and a message: its own refusals and storage's.
ANSWERED = (Refused, StorageError)
