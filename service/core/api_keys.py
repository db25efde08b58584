"""API keys of calling services: checking a presented key, its scopes; creating, revoking, listing keys.

Scopes: `check` (decisions), `write` (facts), `audit` (read the change log and
the auditor pages), `admin` (reload the policy).

A key is `authz_<id>_<secret>`; only the sha256 of the secret is stored (the
secret is 256 random bits, so a fast hash is enough) and it is compared in
constant time. `AUTHZ_PRESHARED_KEY`, when set, is accepted with every scope. How a
request presents its key is the edges' business (`service/http/auth.py`: Bearer;
the auditor's pages: Basic as well).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from models.changelog import Who
from models.database import Database
from models.errors import NotFound
from models.fact_cache import FactCache
from models.queries import api_keys
from models.transactions import write_transaction
from service.core.errors import MissingScope, Unauthenticated

SCOPES = ("check", "write", "audit", "admin")
AUDIT_SCOPE = "audit"  # the change log and the auditor pages (/audit/)
PRESHARED_KEY_ID = "preshared"
KEY_PREFIX = "authz_"
_KEY_ID = re.compile(r"[0-9A-Za-z-]{1,64}\Z")  # ids are token_hex(6); the column holds 64 characters


@dataclass(frozen=True)
class Caller:
    key_id: str
    scopes: frozenset[str]
    name: str = PRESHARED_KEY_ID  # the name the key was created with (the decision log records it)


def secret_sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class KeyRing:
    """Checks presented keys against the preshared key and the stored hashes."""

    def __init__(self, cache: FactCache, preshared_key: str | None) -> None:
        self.cache = cache
        self.preshared_key = preshared_key or None

    def authenticate(self, presented: str) -> Caller:
        """The caller this key identifies; `Unauthenticated` unless it is valid and not revoked."""
        if self.preshared_key is not None and hmac.compare_digest(presented.encode(), self.preshared_key.encode()):
            return Caller(PRESHARED_KEY_ID, frozenset(SCOPES))
        key_id, secret = _split(presented)
        if key_id:
            self.cache.sync()  # a revoked key is refused from the revision that revoked it on
        stored = self.cache.api_key(key_id) if key_id else None
        expected = stored[0] if stored is not None else secret_sha256("no such key")
        matches = hmac.compare_digest(secret_sha256(secret).encode(), expected.encode())
        if stored is None or not matches or stored[2] is not None:
            raise Unauthenticated("the API key is not valid")
        return Caller(key_id, frozenset(stored[1].split(",")), stored[3])

    @staticmethod
    def require(caller: Caller, scopes: tuple[str, ...]) -> None:
        """`MissingScope` unless the key holds one of `scopes`."""
        if not caller.scopes & set(scopes):
            raise MissingScope(f"this API key lacks the `{'` or `'.join(scopes)}` scope")


def _split(presented: str) -> tuple[str, str]:
    """(key id, secret); the id is "" when it cannot be a stored key's, which is then refused without a lookup:
    a random 8 KB key costs no read and leaves nothing behind (the fact cache remembers unknown ids, boundedly)."""
    if not presented.startswith(KEY_PREFIX):
        return "", presented
    key_id, _, secret = presented[len(KEY_PREFIX):].partition("_")
    return (key_id if _KEY_ID.match(key_id) else ""), secret


def create_key(db: Database, name: str, scopes: list[str]) -> tuple[str, str]:
    """Store a new key; answers its id and the full key, which is shown once and never stored."""
    unknown = set(scopes) - set(SCOPES)
    if not scopes or unknown:
        raise ValueError(f"scopes must be among {', '.join(SCOPES)}")
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    scope_text = ",".join(sorted(set(scopes)))
    with write_transaction(db) as tx:
        tx.lock_counter()
        tx.insert_api_key(key_id, name=name, secret_sha256=secret_sha256(secret), scopes=scope_text)
        tx.log(
            Who(None, None), "api_key.create", before={},
            # The secret's sha256 (not the secret): lets a check of the tables against the log catch a swapped key.
            after={"key": key_id, "name": name, "scopes": scope_text, "secret_sha256": secret_sha256(secret)},
        )
    return key_id, f"{KEY_PREFIX}{key_id}_{secret}"


def revoke_key(db: Database, key_id: str) -> None:
    """Revoke a key; every process refuses it from the revision that revoked it on."""
    with write_transaction(db) as tx:
        tx.lock_counter()
        key = tx.api_key(key_id)
        if key is None or key.revoked_at is not None:
            raise NotFound(f"no active API key {key_id}")
        tx.revoke_api_key(key)
        tx.log(
            Who(None, None), "api_key.revoke", before={"key": key_id, "revoked": False},
            after={"key": key_id, "revoked": True},
        )


def list_keys(db: Database) -> list[dict]:
    """Every key ever created, oldest first (never its secret)."""
    return api_keys(db)
