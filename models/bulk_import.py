"""Bulk import's storage: the file's lines spilled to disk by account, and each chunk of accounts written at once.

`Spill` holds the lines of an import file in a temporary SQLite file keyed by the account
(or support agent) they belong to, so the lines of one account come back together, in
line order, whatever their order in the file, and memory does not grow with the file.

`prepare_chunk` builds a chunk's rows ahead, with one change-log entry per fact (kind
`import`) numbered and hashed in Python exactly as `changelog.append` would, on the guess
that the chunk follows the one before it and that none of its accounts is in the store yet.
`write_chunk` writes it in one transaction: it takes the revision counter's lock first (so
the accounts it finds absent stay absent and nobody logs between), reads what the store
already holds of them, lets the caller decide, and writes the prepared rows (COPY on
PostgreSQL, multi-row statements on SQLite) when the guess held, or rows prepared again
under the lock when it did not.

On PostgreSQL a chunk may also be written *beside* the one before it, on a connection of its
own (`write_beside`): two COPYs at once, which the server spreads over two cores. Its
entries follow the chunk before, so it writes nothing of them until that chunk holds the
counter and has kept its prepared numbering (a `Turn` says so), and it takes the counter
only once that chunk has committed, without waiting for it (NOWAIT), under a short
`lock_timeout` for everything else: it never waits on another writer long enough to be
part of a deadlock, and any writer that came between makes it roll back and leave the chunk
to the ordinary write, which numbers it again under the lock.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import groupby
from typing import NamedTuple

import psycopg
from sqlalchemy import ColumnElement, Select, String, any_, bindparam, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from models.changelog import Who, canonical_json, current_revision, hash_of, now, row_hash
from models.database import Database
from models.errors import Conflict, Unavailable
from models.history import IMPORT_KIND
from models.tables import STORED_ROLES, AccountRow, MembershipRow, RevisionCounterRow, SupportAgentRow

SPILL_BATCH = 10_000

_COUNTER = RevisionCounterRow.__table__
_COUNTER_REVISION = select(_COUNTER.c.revision).where(_COUNTER.c.id == 1)
_LOCK_COUNTER = _COUNTER_REVISION.with_for_update()
_TAKE_COUNTER_NOW = _COUNTER_REVISION.with_for_update(nowait=True)
# A chunk written beside the one before waits this long at most for a row another writer holds; far below
# PostgreSQL's deadlock_timeout (1 s by default), so it gives up before any deadlock check could pick a victim.
_BESIDE_LOCK_TIMEOUT = text("SET LOCAL lock_timeout = '100ms'")
_ADVANCE_COUNTER = (
    update(_COUNTER).where(_COUNTER.c.id == 1).values(revision=_COUNTER.c.revision + bindparam("count"))
    .returning(_COUNTER.c.revision)
)


def _one_of(column: ColumnElement, postgres: bool) -> ColumnElement[bool]:
    """`column` is one of the ids bound as `ids`: one array on PostgreSQL (a chunk's 5,000 ids are one
    parameter, not 5,000: a third of the time), an expanded IN list on SQLite (which has no arrays)."""
    if postgres:
        return column == any_(bindparam("ids", type_=ARRAY(String)))
    return column.in_(bindparam("ids", expanding=True))


class _PresentQueries(NamedTuple):
    """What the store already holds of a chunk's ids: accounts, their members, support agents."""

    accounts: Select
    members: Select
    support: Select


def _present_queries(postgres: bool) -> _PresentQueries:
    accounts = select(
        AccountRow.id, AccountRow.name,
        AccountRow.restrict_subscription_to_payment_manager, AccountRow.auto_add_subscription_invoices_to_purchases,
    ).where(_one_of(AccountRow.id, postgres))
    members = select(MembershipRow.account_id, MembershipRow.user_id, MembershipRow.role).where(
        _one_of(MembershipRow.account_id, postgres)
    )
    support = select(SupportAgentRow.user_id).where(_one_of(SupportAgentRow.user_id, postgres))
    return _PresentQueries(accounts, members, support)


_PRESENT = {postgres: _present_queries(postgres) for postgres in (False, True)}
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


NOTHING_PRESENT = Present({}, set())


@dataclass(frozen=True)
class PreparedChunk:
    """A chunk's rows, its change-log entries numbered and hashed on the guess that they follow revision `after`.

    Built ahead, while the chunk before it is being written; `write_chunk` uses the rows when
    the guess holds under the counter's lock, and builds them again when it does not.
    """

    write: ChunkWrite
    after: int
    after_hash: str
    accounts: list[tuple]
    memberships: list[tuple]
    support: list[tuple]
    changes: list[tuple]

    @property
    def revision(self) -> int:
        """The last revision the chunk writes (`after` if it writes nothing)."""
        return self.after + len(self.changes)

    @property
    def last_hash(self) -> str:
        """The hash of the chunk's last entry (`after_hash` if it writes nothing)."""
        return self.changes[-1][-1] if self.changes else self.after_hash


@dataclass(frozen=True)
class Written:
    """What a chunk's transaction did: entries logged, and the latest revision and its hash after it."""

    entries: int
    revision: int
    hash: str


def latest_entry(db: Database) -> tuple[int, str]:
    """The latest revision and its entry's hash, read without a lock (a guess `write_chunk` checks)."""
    with db.read() as session:
        revision = current_revision(session)
        return revision, hash_of(session, revision)


def prepare_chunk(chunk: ChunkWrite, who: Who, *, after: int, prev_hash: str) -> PreparedChunk:
    """The rows of `chunk`, its entries numbered from `after + 1` and chained from `prev_hash`."""
    changes, after_hash = [], prev_hash
    for revision, entry in enumerate(_entries(chunk, who), start=after + 1):
        row = (revision, *entry, prev_hash)  # HASHED_FIELDS, in order
        prev_hash = row_hash(row)
        changes.append((*row, prev_hash))
    return PreparedChunk(
        chunk, after, after_hash,
        accounts=[(account.id, account.name, account.restricted, account.auto_add) for account in chunk.accounts],
        memberships=[
            (account.id, user, role) for account in chunk.accounts for user, role in sorted(account.roles.items())
        ],
        support=[(user,) for user in chunk.support_agents],
        changes=changes,
    )


class Turn:
    """What a chunk written beside another learns of the one before it: numbered as prepared, then committed.

    The chunk before tells (`numbered`) once it holds the counter whether it writes its
    prepared entries as they are, and (`ended`) whether its transaction committed. Each is
    told exactly once, whatever happens (`write_chunk` tells both even when it fails).
    """

    def __init__(self) -> None:
        self._numbered, self._ended = threading.Event(), threading.Event()
        self._as_prepared = self._committed = False

    def numbered(self, as_prepared: bool) -> None:
        if not self._numbered.is_set():
            self._as_prepared = as_prepared
            self._numbered.set()

    def ended(self, committed: bool) -> None:
        self.numbered(False)  # a chunk that ended before it was numbered did not keep its numbering
        if not self._ended.is_set():
            self._committed = committed
            self._ended.set()

    def wait_numbered(self) -> bool:
        """Wait until the chunk before holds the counter: True if its entries are the ones it was prepared with."""
        self._numbered.wait()
        return self._as_prepared

    def wait_ended(self) -> bool:
        """Wait until the chunk before's transaction ended: True if it committed."""
        self._ended.wait()
        return self._committed


def write_chunk(
    db: Database,
    who: Who,
    wanted: ChunkWrite,
    decide: Callable[[Present], ChunkWrite],
    prepared: PreparedChunk | None = None,
    turn: Turn | None = None,
) -> Written:
    """Write one chunk in one transaction: what `decide` makes of what the store holds of `wanted`'s ids.

    `prepared` rows are written as they are when the store is still at `prepared.after` and
    `decide` chooses what they were prepared for; otherwise (none prepared, another writer came
    between, or some of the ids are present) the rows are prepared under the lock. `turn`, if
    given, is told how it went, for the chunk being written beside this one.
    `Conflict` (nothing written) if a concurrent write took one of its ids between our look and our insert.
    """
    committed = False
    try:
        written = _write_chunk(db, who, wanted, decide, prepared, turn)
        committed = True
        return written
    except (IntegrityError, psycopg.errors.UniqueViolation, psycopg.errors.DeadlockDetected) as error:
        raise Conflict("a concurrent change took one of the chunk's ids; nothing written", "concurrent_change") from error
    except (DBAPIError, psycopg.Error, sqlite3.Error) as error:
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise Unavailable(f"the database refused the chunk ({first_line}); nothing of it written") from error
    finally:
        if turn is not None:
            turn.ended(committed)


def _write_chunk(
    db: Database,
    who: Who,
    wanted: ChunkWrite,
    decide: Callable[[Present], ChunkWrite],
    prepared: PreparedChunk | None,
    turn: Turn | None,
) -> Written:
    with db.write() as session:
        current = session.execute(_LOCK_COUNTER).scalar_one()  # every other writer logs after us
        chunk = decide(_present(db, session, wanted))  # nothing we find absent appears while we hold the lock
        as_prepared = prepared is not None and current == prepared.after and chunk == prepared.write
        if turn is not None:
            turn.numbered(as_prepared)
        if not as_prepared:
            prepared = prepare_chunk(chunk, who, after=current, prev_hash=hash_of(session, current))
        if not prepared.changes:
            return Written(0, current, prepared.after_hash)
        last = session.execute(_ADVANCE_COUNTER, {"count": len(prepared.changes)}).scalar_one()
        if db.is_sqlite:
            _insert_rows(session, prepared)
        else:
            _copy_rows(session, prepared)
        session.info["revision"] = last
        return Written(len(prepared.changes), last, prepared.last_hash)


def write_beside(
    db: Database,
    who: Who,
    decide: Callable[[Present], ChunkWrite],
    prepared: PreparedChunk,
    before: Turn,
) -> Written | None:
    """Write `prepared` (PostgreSQL) while the chunk before it, whose `before` turn it is, is still being written.

    The rows go in (COPY) once the chunk before holds the counter with the numbering this one
    was prepared after; the counter is taken, without waiting, once that chunk has committed,
    and must then stand at `prepared.after` with its entry's hash `prepared.after_hash`. None,
    with nothing written, if anything else happened: the chunk before failed or was numbered
    again, a writer came between, a row it needs is held by another writer, or `decide` wants
    other rows than the prepared ones (some accounts present). The caller then writes the
    chunk the ordinary way (`write_chunk`), after the chunk before.
    """
    if not before.wait_numbered():
        return None
    try:
        with db.write() as session:
            session.execute(_BESIDE_LOCK_TIMEOUT)
            if decide(_present(db, session, prepared.write)) != prepared.write:
                return None
            _copy_rows(session, prepared)
            if not before.wait_ended():
                raise _NotAfter
            current = session.execute(_TAKE_COUNTER_NOW).scalar_one()
            if current != prepared.after or hash_of(session, current) != prepared.after_hash:
                raise _NotAfter  # another writer came between the chunk before and this one
            last = session.execute(_ADVANCE_COUNTER, {"count": len(prepared.changes)}).scalar_one()
            session.info["revision"] = last
    except (_NotAfter, DBAPIError, psycopg.Error):  # rolled back: the lock timed out, a row was taken, the
        return None  # counter was held or had moved, the connection was lost; the ordinary write sorts it out
    return Written(len(prepared.changes), last, prepared.last_hash)


class _NotAfter(Exception):
    """The chunk written beside does not follow the chunk before it after all: roll it back."""


def _present(db: Database, session: Session, wanted: ChunkWrite) -> Present:
    queries = _PRESENT[not db.is_sqlite]
    ids = [account.id for account in wanted.accounts]
    return Present(_present_accounts(session, queries, ids), _present_support(session, queries, wanted.support_agents))


def _present_accounts(session: Session, queries: _PresentQueries, ids: list[str]) -> dict[str, ImportedAccount]:
    if not ids:
        return {}
    accounts = {
        row.id: ImportedAccount(
            row.id, row.name, bool(row.restrict_subscription_to_payment_manager),
            bool(row.auto_add_subscription_invoices_to_purchases), {},
        )
        for row in session.execute(queries.accounts, {"ids": ids})
    }
    if accounts:
        for account_id, user, role in session.execute(queries.members, {"ids": list(accounts)}):
            accounts[account_id].roles[user] = role
    return accounts


def _present_support(session: Session, queries: _PresentQueries, users: list[str]) -> set[str]:
    return set(session.execute(queries.support, {"ids": users}).scalars()) if users else set()


def _entries(chunk: ChunkWrite, who: Who) -> list[tuple]:
    """One entry per fact, in the shapes of the ordinary entries: settings, then each role, then support agents.

    Each is `(at, kind, account, user, acting_user, api_key, before, after)`: the hashed
    fields between the revision and the previous hash, in `HASHED_FIELDS` order.
    """
    at, acting_user, api_key = now(), who.acting_user, who.api_key
    entries = []
    for account in chunk.accounts:
        entries.append((at, IMPORT_KIND, account.id, None, acting_user, api_key, _NOTHING, canonical_json({
            "name": account.name,
            "restrict_subscription_to_payment_manager": account.restricted,
            "auto_add_subscription_invoices_to_purchases": account.auto_add,
        })))
        for user, role in sorted(account.roles.items()):
            entries.append((at, IMPORT_KIND, account.id, user, acting_user, api_key, _NO_ROLE, _ROLE[role]))
    for user in chunk.support_agents:
        entries.append((at, IMPORT_KIND, None, user, acting_user, api_key, _NOT_SUPPORT, _SUPPORT_AGENT))
    return entries


def _tables(prepared: PreparedChunk) -> tuple:
    """(table, columns, rows) of a chunk, in the order they are written (accounts before their memberships)."""
    return (
        ("accounts", _ACCOUNT_COLUMNS, prepared.accounts),
        ("memberships", ("account_id", "user_id", "role"), prepared.memberships),
        ("support_agents", ("user_id",), prepared.support),
        ("changes", _CHANGE_COLUMNS, prepared.changes),
    )


def _insert_rows(session: Session, prepared: PreparedChunk) -> None:
    """SQLite: one prepared multi-row executemany per table, on the driver's connection, in the session's transaction."""
    connection = session.connection().connection.driver_connection
    for table, columns, rows in _tables(prepared):
        if rows:
            marks = ", ".join("?" for _column in columns)
            connection.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)


def _copy_rows(session: Session, prepared: PreparedChunk) -> None:
    """COPY every row (in the session's transaction; the change log's trigger notifies listeners at commit)."""
    connection = session.connection().connection.driver_connection
    with connection.cursor() as cursor:
        for table, columns, rows in _tables(prepared):
            if rows:
                with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
