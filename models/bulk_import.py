"""Bulk import's storage: the file's lines spilled to disk by account, and each chunk of accounts written at once.

`Spill` holds the lines of an import file in a temporary SQLite file keyed by the account
(or support agent) they belong to, so the lines of one account come back together, in
line order, whatever their order in the file, and memory does not grow with the file.

`write_chunk` writes a chunk of whole accounts in one transaction: it takes the revision
counter's lock first (so the accounts it finds absent stay absent), reads what the store
already holds of them, lets the caller decide, then writes the rows with multi-row
statements (COPY on PostgreSQL) and one change-log entry per fact (kind `import`), the
hash chain computed in Python exactly as `changelog.append` does.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

import psycopg
from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from models.changelog import GENESIS_HASH, Who, canonical_json, entry_hash, now
from models.database import Database
from models.errors import Conflict, Unavailable
from models.history import IMPORT_KIND
from models.tables import STORED_ROLES, AccountRow, ChangeRow, MembershipRow, RevisionCounterRow, SupportAgentRow

SPILL_BATCH = 10_000

_COUNTER = RevisionCounterRow.__table__
_LOCK_COUNTER = select(_COUNTER.c.revision).where(_COUNTER.c.id == 1).with_for_update()
_ADVANCE_COUNTER = (
    update(_COUNTER).where(_COUNTER.c.id == 1).values(revision=_COUNTER.c.revision + bindparam("count"))
    .returning(_COUNTER.c.revision)
)
_HASH_OF = select(ChangeRow.__table__.c.hash).where(ChangeRow.__table__.c.revision == bindparam("revision"))
_ACCOUNTS = select(
    AccountRow.id, AccountRow.name,
    AccountRow.restrict_subscription_to_payment_manager, AccountRow.auto_add_subscription_invoices_to_purchases,
).where(AccountRow.id.in_(bindparam("ids", expanding=True)))
_MEMBERS = select(MembershipRow.account_id, MembershipRow.user_id, MembershipRow.role).where(
    MembershipRow.account_id.in_(bindparam("ids", expanding=True))
)
_SUPPORT = select(SupportAgentRow.user_id).where(SupportAgentRow.user_id.in_(bindparam("ids", expanding=True)))
# The before and after of the entries that repeat, as canonical JSON, built once.
_NOTHING, _NO_ROLE = canonical_json({}), canonical_json({"role": None})
_ROLE = {role: canonical_json({"role": role}) for role in STORED_ROLES}
_NOT_SUPPORT, _SUPPORT_AGENT = canonical_json({"support_agent": False}), canonical_json({"support_agent": True})
_ACCOUNT_COLUMNS = ("id", "name", "restrict_subscription_to_payment_manager", "auto_add_subscription_invoices_to_purchases")
_CHANGE_COLUMNS = (
    "revision", "at", "kind", "account_id", "user_id", "acting_user", "api_key", "before", "after", "prev_hash", "hash",
)


class Spill:
    """The import file's lines on disk, grouped by key: `add` them in any order, then read them back by key."""

    def __init__(self) -> None:
        handle, self.path = tempfile.mkstemp(prefix="authz-import-", suffix=".sqlite3")
        os.close(handle)
        self._connection = sqlite3.connect(self.path, isolation_level=None)
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-8192", "temp_store=FILE"):
            self._connection.execute(f"PRAGMA {pragma}")
        self._connection.execute("CREATE TABLE lines (key TEXT NOT NULL, line INTEGER NOT NULL, text TEXT NOT NULL)")
        self._pending: list[tuple[str, int, str]] = []

    def add(self, key: str, line: int, content: str) -> None:
        self._pending.append((key, line, content))
        if len(self._pending) >= SPILL_BATCH:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            self._connection.execute("BEGIN")
            self._connection.executemany("INSERT INTO lines VALUES (?, ?, ?)", self._pending)
            self._connection.execute("COMMIT")
            self._pending = []

    def groups(self) -> Iterator[tuple[str, list[tuple[int, str]]]]:
        """Every key with its lines `(number, text)`, keys in order, lines in file order."""
        self._flush()
        rows = self._connection.execute("SELECT key, line, text FROM lines ORDER BY key, line")
        for key, lines in groupby(rows, key=lambda row: row[0]):
            yield key, [(number, content) for _key, number, content in lines]

    def close(self) -> None:
        self._connection.close()
        for suffix in ("", "-journal", "-wal", "-shm"):
            try:
                os.unlink(self.path + suffix)
            except FileNotFoundError:
                pass


@dataclass(frozen=True)
class ImportedAccount:
    """An account as a file describes it (or as the store holds it): settings and every member's role."""

    id: str
    name: str
    restricted: bool
    auto_add: bool
    roles: dict[str, str] = field(default_factory=dict)  # user -> role


@dataclass(frozen=True)
class Present:
    """What the store already holds of a chunk: its accounts (with their members) and its support agents."""

    accounts: dict[str, ImportedAccount]
    support_agents: set[str]


@dataclass(frozen=True)
class ChunkWrite:
    """What to write of a chunk, once the caller has compared it with what is present."""

    accounts: list[ImportedAccount]
    support_agents: list[str]


def write_chunk(
    db: Database,
    who: Who,
    account_ids: list[str],
    support_agents: list[str],
    decide: Callable[[Present], ChunkWrite],
) -> tuple[int, int]:
    """Write one chunk in one transaction; answers (entries logged, latest revision after it).

    `Conflict` (nothing written) if a concurrent write took one of its ids between our look and our insert.
    """
    try:
        return _write_chunk(db, who, account_ids, support_agents, decide)
    except (IntegrityError, psycopg.errors.UniqueViolation, psycopg.errors.DeadlockDetected) as error:
        raise Conflict("a concurrent change took one of the chunk's ids; nothing written", "concurrent_change") from error
    except (DBAPIError, psycopg.Error, sqlite3.Error) as error:
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise Unavailable(f"the database refused the chunk ({first_line}); nothing of it written") from error


def _write_chunk(
    db: Database,
    who: Who,
    account_ids: list[str],
    support_agents: list[str],
    decide: Callable[[Present], ChunkWrite],
) -> tuple[int, int]:
    with db.write() as session:
        session.execute(_LOCK_COUNTER)  # every other writer logs after us; nothing we find absent appears
        present = Present(_present_accounts(session, account_ids), _present_support(session, support_agents))
        chunk = decide(present)
        entries = _entries(chunk, who)
        if not entries:
            return 0, session.execute(_LOCK_COUNTER).scalar_one()
        last = session.execute(_ADVANCE_COUNTER, {"count": len(entries)}).scalar_one()
        first = last - len(entries) + 1
        prev_hash = GENESIS_HASH if first == 1 else session.execute(_HASH_OF, {"revision": first - 1}).scalar_one()
        changes = []
        for revision, fields in enumerate(entries, start=first):
            fields["revision"], fields["prev_hash"] = revision, prev_hash
            prev_hash = entry_hash(fields)
            changes.append(
                (revision, fields["at"], IMPORT_KIND, fields["account"], fields["user"], who.acting_user, who.api_key,
                 fields["before"], fields["after"], fields["prev_hash"], prev_hash)
            )
        accounts = [
            (account.id, account.name, account.restricted, account.auto_add) for account in chunk.accounts
        ]
        memberships = [
            (account.id, user, role) for account in chunk.accounts for user, role in sorted(account.roles.items())
        ]
        support = [(user,) for user in chunk.support_agents]
        if db.is_sqlite:
            _insert_rows(session, accounts, memberships, support, changes)
        else:
            _copy_rows(session, accounts, memberships, support, changes)
        session.info["revision"] = last
        return len(entries), last


def _present_accounts(session: Session, ids: list[str]) -> dict[str, ImportedAccount]:
    if not ids:
        return {}
    accounts = {
        row.id: ImportedAccount(
            row.id, row.name, bool(row.restrict_subscription_to_payment_manager),
            bool(row.auto_add_subscription_invoices_to_purchases), {},
        )
        for row in session.execute(_ACCOUNTS, {"ids": ids})
    }
    if accounts:
        for account_id, user, role in session.execute(_MEMBERS, {"ids": list(accounts)}):
            accounts[account_id].roles[user] = role
    return accounts


def _present_support(session: Session, users: list[str]) -> set[str]:
    return set(session.execute(_SUPPORT, {"ids": users}).scalars()) if users else set()


def _entries(chunk: ChunkWrite, who: Who) -> list[dict[str, Any]]:
    """One entry per fact, in the shapes of the ordinary entries: settings, then each role, then support agents."""
    at = now()
    entries = []

    def entry(account: str | None, user: str | None, before: str, after: str) -> None:
        entries.append({
            "at": at, "kind": IMPORT_KIND, "account": account, "user": user, "acting_user": who.acting_user,
            "api_key": who.api_key, "before": before, "after": after,
        })

    for account in chunk.accounts:
        entry(account.id, None, _NOTHING, canonical_json({
            "name": account.name,
            "restrict_subscription_to_payment_manager": account.restricted,
            "auto_add_subscription_invoices_to_purchases": account.auto_add,
        }))
        for user, role in sorted(account.roles.items()):
            entry(account.id, user, _NO_ROLE, _ROLE[role])
    for user in chunk.support_agents:
        entry(None, user, _NOT_SUPPORT, _SUPPORT_AGENT)
    return entries


def _tables(accounts: list, memberships: list, support: list, changes: list) -> tuple:
    """(table, columns, rows) of a chunk, in the order they are written (accounts before their memberships)."""
    return (
        ("accounts", _ACCOUNT_COLUMNS, accounts),
        ("memberships", ("account_id", "user_id", "role"), memberships),
        ("support_agents", ("user_id",), support),
        ("changes", _CHANGE_COLUMNS, changes),
    )


def _insert_rows(session: Session, accounts: list, memberships: list, support: list, changes: list) -> None:
    """SQLite: one prepared multi-row executemany per table, on the driver's connection, in the session's transaction."""
    connection = session.connection().connection.driver_connection
    for table, columns, rows in _tables(accounts, memberships, support, changes):
        if rows:
            marks = ", ".join("?" for _column in columns)
            connection.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)


def _copy_rows(session: Session, accounts: list, memberships: list, support: list, changes: list) -> None:
    """COPY every row (in the session's transaction; the change log's trigger notifies listeners at commit)."""
    connection = session.connection().connection.driver_connection
    with connection.cursor() as cursor:
        for table, columns, rows in _tables(accounts, memberships, support, changes):
            if rows:
                with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
