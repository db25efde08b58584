"""Reads that show stored records as they are: a page of accounts, whether an account exists, the API keys.

Decisions read through `facts.py` and its cache, changes through `transactions.py`;
what is here serves the auditor's pages and the command-line tool.
"""

from __future__ import annotations

from sqlalchemy import select

from models.database import Database
from models.tables import AccountRow, ApiKeyRow


def accounts_page(db: Database, *, after: str, limit: int) -> list[tuple[str, str]]:
    """(id, name) of at most `limit` accounts whose id sorts after `after`, in id order."""
    with db.read() as session:
        rows = session.execute(
            select(AccountRow.id, AccountRow.name).where(AccountRow.id > after).order_by(AccountRow.id).limit(limit)
        )
        return [(account_id, name) for account_id, name in rows]


def account_exists(db: Database, account_id: str) -> bool:
    with db.read() as session:
        return session.get(AccountRow, account_id) is not None


def api_keys(db: Database) -> list[dict]:
    """Every API key ever created, oldest first: id, name, scopes, created_at, revoked_at (never the secret)."""
    with db.read() as session:
        keys = session.execute(select(ApiKeyRow).order_by(ApiKeyRow.created_at)).scalars()
        return [
            {"id": k.id, "name": k.name, "scopes": k.scopes, "created_at": k.created_at, "revoked_at": k.revoked_at}
            for k in keys
        ]
