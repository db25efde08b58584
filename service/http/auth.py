"""How a request presents the calling service's API key: `Authorization: Bearer <key>`.

The key itself is checked by the core (`service/core/api_keys.py`); the scheme's name
is case-insensitive (RFC 9110).
"""

from __future__ import annotations

from service.core.api_keys import Caller, KeyRing
from service.core.errors import Unauthenticated


def bearer_key(header: str | None) -> str:
    """The key of `Bearer <key>`; `Unauthenticated` for no header or another scheme."""
    if not header or header[:7].lower() != "bearer ":
        raise Unauthenticated("send the calling service's key as `Authorization: Bearer <key>`")
    return header[7:].strip()


def authenticate(keys: KeyRing, header: str | None, scopes: tuple[str, ...] | None) -> Caller:
    """The caller of a request with this `Authorization` header, holding one of `scopes` (None: any valid key)."""
    caller = keys.authenticate(bearer_key(header))
    if scopes is not None:
        keys.require(caller, scopes)
    return caller
