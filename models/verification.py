"""Is the record intact? The change log's hash chain, then the fact tables against what the log records.

An entry edited, deleted or reordered breaks the chain (`verify_chain`); a fact
changed in the tables behind the log's back shows as drift (`drift.facts_drift`).
Both read raw rows from server-side cursors, in key order, inside one read
transaction (one snapshot): memory stays flat whatever the log's length, and the
transaction is never idle long enough for PostgreSQL's idle-in-transaction timeout.

The chain can also be walked from a point already verified (`start`), so a page
checks only the entries written since (the tail) and never the whole log.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Connection, text

from models.changelog import GENESIS_HASH, row_hash
from models.database import Database
from models.drift import account_drift, facts_drift, stream_rows

DRIFT_SHOWN = 20


@dataclass(frozen=True)
class Head:
    """The latest entry of the log: its revision and hash (revision 0 and the genesis hash when empty)."""

    revision: int
    sha256: str

    def __str__(self) -> str:
        return f"{self.revision} {self.sha256}"


@dataclass(frozen=True)
class Verification:
    """What a walk of the log found: intact, or the first revision affected and the problem.

    `drift` describes at most `DRIFT_SHOWN` of the `drift_count` differences found.
    `checked_from`: the revision the walk started after (0: from the first entry).
    """

    ok: bool
    entries: int
    revision: int
    first_bad_revision: int | None = None
    problem: str | None = None
    drift: tuple[str, ...] = ()
    drift_count: int = 0
    head: Head = Head(0, GENESIS_HASH)
    checked_from: int = 0


@contextmanager
def snapshot(db: Database) -> Iterator[Connection]:
    """One read transaction whose statements all see the same state (REPEATABLE READ on PostgreSQL)."""
    with db.engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            yield connection


def verify_log(db: Database, *, expect: Head | None = None) -> Verification:
    """`verify`, in a read transaction of its own."""
    with snapshot(db) as connection:
        return verify(connection, expect=expect)


def verify(connection: Connection, *, expect: Head | None = None) -> Verification:
    """Walk the whole log and report the first entry that was edited, deleted or reordered.

    With `expect` (a head noted earlier, outside the database), the entry at that
    revision must still have that hash: a log rewritten whole, every hash
    recomputed, or cut back, holds together but fails this.
    Then, if the log is intact, rebuild the facts from it and report where the
    fact tables differ (a fact changed in the database behind the log's back).
    """
    chain = verify_chain(connection)
    if not chain.ok:
        return chain
    if expect is not None:
        anchored = anchor_problem(connection, expect, "noted")
        if anchored is not None:
            return Verification(False, chain.entries, chain.revision, expect.revision, anchored, head=chain.head)
    drift = facts_drift(connection, DRIFT_SHOWN)
    if drift.count:
        shown = len(drift.shown)
        return Verification(
            False, chain.entries, chain.revision, None,
            f"the fact tables differ from what the change log records ({drift.count} differences, {shown} shown)",
            tuple(drift.shown), drift.count, chain.head,
        )
    return chain


def anchor_problem(connection: Connection, anchor: Head, how: str) -> str | None:
    """Why the log no longer holds `anchor` (an entry's revision and hash noted earlier), or None if it does."""
    stored = connection.execute(
        text("SELECT hash FROM changes WHERE revision = :revision"), {"revision": anchor.revision}
    ).scalar()
    if stored is None:
        return f"revision {anchor.revision}, {how} with hash {anchor.sha256}, is no longer in the log: it was cut back"
    if stored != anchor.sha256:
        return (
            f"revision {anchor.revision} has hash {stored}, not the {how} {anchor.sha256}: "
            "the log was rewritten since"
        )
    return None


def head(connection: Connection) -> Head:
    row = connection.execute(text("SELECT revision, hash FROM changes ORDER BY revision DESC LIMIT 1")).first()
    return Head(int(row[0]), row[1]) if row else Head(0, GENESIS_HASH)


def read_head(db: Database) -> Head:
    with db.engine.connect() as connection:
        return head(connection)


def verify_chain(connection: Connection, start: Head = Head(0, GENESIS_HASH), limit: int | None = None) -> Verification:
    """Check the chain after `start` (an entry known good): every link, every hash, no gap, no cut end.

    With `limit`, at most that many entries are read; the answer then covers the
    entries up to its `revision` (its `head` is the last one checked).
    """
    if start.revision:
        stored = connection.execute(
            text("SELECT hash FROM changes WHERE revision = :revision"), {"revision": start.revision}
        ).scalar()
        if stored != start.sha256:
            problem = (
                f"revision {start.revision} is missing: the entry was deleted" if stored is None else
                f"revision {start.revision} no longer has the hash it had when it was verified: the log was rewritten"
            )
            return Verification(False, 0, start.revision, start.revision, problem, checked_from=start.revision)
    expected_revision = start.revision + 1
    prev_hash = start.sha256
    count = 0
    statement = f"SELECT {_COLUMNS} FROM changes WHERE revision > {int(start.revision)} ORDER BY revision"
    if limit is not None:
        statement += f" LIMIT {int(limit)}"
    rows = stream_rows(connection, statement)
    for row in rows:
        count += 1
        revision = row[0]
        if revision != expected_revision:
            rows.close()
            return Verification(
                False, count, revision, expected_revision,
                f"revision {expected_revision} is missing: the entry was deleted or the log reordered",
                checked_from=start.revision,
            )
        if row[9] != prev_hash:
            rows.close()
            return Verification(
                False, count, revision, revision,
                f"revision {revision} does not follow revision {revision - 1}: an entry was replaced or the log reordered",
                checked_from=start.revision,
            )
        if row_hash(row) != row[10]:
            rows.close()
            return Verification(
                False, count, revision, revision,
                f"revision {revision} was edited: its content no longer matches its hash",
                checked_from=start.revision,
            )
        prev_hash = row[10]
        expected_revision += 1
    last = Head(expected_revision - 1, prev_hash)
    if limit is not None and count == limit:
        return Verification(True, count, last.revision, head=last, checked_from=start.revision)
    counter = connection.execute(text("SELECT revision FROM revision_counter WHERE id = 1")).scalar_one()
    if counter != last.revision:
        return Verification(
            False, count, counter, expected_revision,
            f"the log ends at revision {last.revision} but revision {counter} was handed out: "
            "the last entries were deleted",
            head=last, checked_from=start.revision,
        )
    return Verification(True, count, counter, head=last, checked_from=start.revision)


# The hashed fields, in HASHED_FIELDS order, then the stored hash.
_COLUMNS = "revision, at, kind, account_id, user_id, acting_user, api_key, before, after, prev_hash, hash"


def read_account_drift(db: Database, account: str, limit: int = 5) -> tuple[int, tuple[str, ...]]:
    """How many differences the tables hold for one account and its members against the log, and the first ones."""
    with snapshot(db) as connection:
        drift = account_drift(connection, account, limit)
        return drift.count, tuple(drift.shown)


def facts_at_most(connection: Connection, rows: int) -> bool:
    """Whether each fact table holds at most `rows` rows (counted no further than that)."""
    for table in ("accounts", "memberships", "support_agents"):
        counted = connection.execute(
            text(f"SELECT COUNT(*) FROM (SELECT 1 FROM {table} LIMIT {int(rows) + 1}) AS bounded")
        ).scalar_one()
        if counted > rows:
            return False
    return True
