"""Why a change or a lookup was refused; the service turns each into its HTTP status."""


class StoreError(Exception):
    status = 400
    code = "invalid_request"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class NotFound(StoreError):
    status = 404
    code = "not_found"


class Forbidden(StoreError):
    """The acting user lacks the permission the change needs."""

    status = 403
    code = "forbidden"


class Conflict(StoreError):
    """The change would break an invariant; nothing was changed."""

    status = 409
    code = "conflict"


class Unavailable(StoreError):
    """The database cannot be reached: nothing is decided and nothing is written."""

    status = 503
    code = "unavailable"
