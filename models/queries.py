"""Reads that show stored records as they are: a page of accounts, whether an account exists, the API keys.

Decisions read through `facts.py` and its cache, changes through `transactions.py`;
what is here serves the auditor's pages and the command-line tool.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, or_, select

from models.changelog import entry_document
from models.database import Database
from models.tables import AccountRow, ApiKeyRow, ChangeRow


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


@dataclass(frozen=True)
class ChangeFilter:
    """Which change-log entries a page shows: any of these left None is not a filter.

    `user`: the user a change is about, or the one who asked for it. `since` (inclusive)
    and `until` (exclusive): times as the log writes them (`2026-12-01T09:30:00.000000Z`).
    """

    account: str | None = None
    user: str | None = None
    kind: str | None = None
    since: str | None = None
    until: str | None = None

    def paths(self, *, sqlite: bool = False) -> list[list]:
        """The conditions of each index scan whose union is the filter (one, or two for a user).

        Each scan is led by one index, in revision order: the account's, the user's (the user a
        change is about; then the one who asked), the kind's, else the time's. The other
        conditions are written so that no index serves them (`column || ''`): a planner with
        statistics would otherwise walk the whole log in revision order looking for a rare user.
        On SQLite the leading condition is also marked `unlikely()`: its statistics average over
        every value (NULL included), and would take "acting_user = ?" to match most of the log.
        """

        def plain(column, value):
            return func.unlikely(column == value) if sqlite else column == value

        def unindexed(column, value):
            return column.concat("") == value

        def time(column_of) -> list:
            found = []
            if self.since is not None:
                found.append(column_of(ChangeRow.at) >= self.since)
            if self.until is not None:
                found.append(column_of(ChangeRow.at) < self.until)
            return found

        lead = "account" if self.account else "user" if self.user else "kind" if self.kind else "time"
        shared = []
        if self.account is not None:
            shared.append((plain if lead == "account" else unindexed)(ChangeRow.account_id, self.account))
        if self.kind is not None:
            shared.append((plain if lead == "kind" else unindexed)(ChangeRow.kind, self.kind))
        shared += time((lambda column: column) if lead == "time" else (lambda column: column.concat("")))
        if self.user is None:
            return [shared]
        if lead == "user":
            return [[*shared, plain(ChangeRow.user_id, self.user)], [*shared, plain(ChangeRow.acting_user, self.user)]]
        return [[*shared, or_(unindexed(ChangeRow.user_id, self.user), unindexed(ChangeRow.acting_user, self.user))]]


@dataclass(frozen=True)
class ChangePage:
    """A page of entries, oldest first, and whether the filter holds entries before and after it."""

    entries: list[dict]
    more_before: bool
    more_after: bool


def change_page(db: Database, where: ChangeFilter, *, after: int = 0, before: int | None = None, limit: int) -> ChangePage:
    """At most `limit` entries matching `where`: the first after revision `after`, or with `before`, the last before it."""
    paths = where.paths(sqlite=db.is_sqlite)
    with db.read() as session:
        rows: dict[int, ChangeRow] = {}
        for conditions in paths:
            query = select(ChangeRow).where(*conditions)
            if before is not None:
                query = query.where(ChangeRow.revision < before).order_by(ChangeRow.revision.desc())
            else:
                query = query.where(ChangeRow.revision > after).order_by(ChangeRow.revision)
            rows.update((row.revision, row) for row in session.execute(query.limit(limit)).scalars())
        chosen = sorted(rows, reverse=before is not None)[:limit]
        entries = [entry_document(rows[revision]) for revision in sorted(chosen)]
        if not entries:
            return ChangePage([], False, False)

        def exists(condition) -> bool:
            return any(
                session.execute(select(ChangeRow.revision).where(*conditions, condition).limit(1)).first() is not None
                for conditions in paths
            )

        return ChangePage(
            entries, exists(ChangeRow.revision < entries[0]["revision"]), exists(ChangeRow.revision > entries[-1]["revision"])
        )


def revision_at(db: Database, moment: str) -> int:
    """The latest revision written at or before `moment` (a time as the log writes it); 0 before the first."""
    with db.read() as session:
        found = session.execute(
            select(ChangeRow.revision).where(ChangeRow.at <= moment).order_by(ChangeRow.at.desc(), ChangeRow.revision.desc())
            .limit(1)
        ).scalar()
        return found or 0
