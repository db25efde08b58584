"""The append-only change log: one entry per change, hash-chained.

Every write appends its entry in the same transaction as the change itself,
and takes the next revision from the single-row `revision_counter` at that
moment. The counter's row lock is held until commit, so revisions are
strictly increasing in commit order, with no gaps and no duplicates, whatever
the number of writers.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy.orm import Session

from models.tables import Change, RevisionCounter

GENESIS_HASH = "0" * 64
# Built once: the write path is hot. Table-level statements skip the ORM's bulk machinery.
_NEXT_REVISION = (
    update(RevisionCounter.__table__)
    .where(RevisionCounter.__table__.c.id == 1)
    .values(revision=RevisionCounter.__table__.c.revision + 1)
    .returning(RevisionCounter.__table__.c.revision)
)
_HASH_OF = select(Change.__table__.c.hash).where(Change.__table__.c.revision == bindparam("revision"))
_INSERT_ENTRY = insert(Change.__table__)
NOTIFY_CHANNEL = "authz_changes"  # see migration 0004
HASHED_FIELDS = ("revision", "at", "kind", "account", "user", "acting_user", "api_key", "before", "after", "prev_hash")


@dataclass(frozen=True)
class Who:
    """Who asked for a change: the person it was made for (None: a system change) and the API key."""

    acting_user: str | None
    api_key: str | None


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(fields: dict[str, Any]) -> str:
    """The sha256 of an entry's content, including the previous entry's hash."""
    return hashlib.sha256(canonical_json({name: fields[name] for name in HASHED_FIELDS}).encode()).hexdigest()


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def append(
    session: Session,
    who: Who,
    kind: str,
    *,
    account: str | None = None,
    user: str | None = None,
    before: dict[str, Any],
    after: dict[str, Any],
) -> int:
    """Record one change in the current transaction and answer its revision.

    Call it last in the transaction: from here to the commit every other
    writer waits on the counter row.
    """
    revision = session.execute(_NEXT_REVISION).scalar_one()
    prev_hash = GENESIS_HASH
    if revision > 1:
        prev_hash = session.execute(_HASH_OF, {"revision": revision - 1}).scalar_one()
    fields = {
        "revision": revision,
        "at": now(),
        "kind": kind,
        "account": account,
        "user": user,
        "acting_user": who.acting_user,
        "api_key": who.api_key,
        "before": canonical_json(before),
        "after": canonical_json(after),
        "prev_hash": prev_hash,
    }
    session.execute(
        _INSERT_ENTRY,
        {
            "revision": revision,
            "at": fields["at"],
            "kind": kind,
            "account_id": account,
            "user_id": user,
            "acting_user": who.acting_user,
            "api_key": who.api_key,
            "before": fields["before"],
            "after": fields["after"],
            "prev_hash": prev_hash,
            "hash": entry_hash(fields),
        },
    )  # PostgreSQL: the insert notifies listeners at commit (trigger authz_notify_change, migration 0004)
    session.info["revision"] = revision
    return revision


def lock_counter(session: Session) -> None:
    """Take the counter's lock now, for a change with no account row to lock (support agents, API keys)."""
    session.execute(select(RevisionCounter.revision).where(RevisionCounter.id == 1).with_for_update())


def current_revision(connection: Connection | Session) -> int:
    return connection.execute(select(RevisionCounter.revision).where(RevisionCounter.id == 1)).scalar_one()


def entry_fields(change: Change) -> dict[str, Any]:
    """An entry as stored, under the names its hash covers."""
    return {
        "revision": change.revision,
        "at": change.at,
        "kind": change.kind,
        "account": change.account_id,
        "user": change.user_id,
        "acting_user": change.acting_user,
        "api_key": change.api_key,
        "before": change.before,
        "after": change.after,
        "prev_hash": change.prev_hash,
    }


def entry_document(change: Change) -> dict[str, Any]:
    """An entry as the API and the command-line tool show it."""
    fields = entry_fields(change)
    fields["before"] = json.loads(change.before)
    fields["after"] = json.loads(change.after)
    fields["hash"] = change.hash
    return fields


@dataclass(frozen=True)
class Verification:
    ok: bool
    entries: int
    revision: int
    first_bad_revision: int | None = None
    problem: str | None = None
    drift: tuple[str, ...] = ()


def verify(session: Session) -> Verification:
    """Walk the whole log and report the first entry that was edited, deleted or reordered.

    Then, if the log is intact, rebuild the facts from it and report where the
    fact tables differ (a fact changed in the database behind the log's back).
    """
    chain = verify_chain(session)
    if not chain.ok:
        return chain
    from models.history import facts_drift  # history reads the log; the log does not need history

    drift = tuple(facts_drift(session))
    if drift:
        return Verification(
            False, chain.entries, chain.revision, None,
            f"the fact tables differ from what the change log records ({len(drift)} shown)", drift,
        )
    return chain


def verify_chain(session: Session) -> Verification:
    expected_revision = 1
    prev_hash = GENESIS_HASH
    count = 0
    for change in _all_entries(session):
        count += 1
        if change.revision != expected_revision:
            return Verification(
                False, count, change.revision, expected_revision,
                f"revision {expected_revision} is missing: the entry was deleted or the log reordered",
            )
        if change.prev_hash != prev_hash:
            return Verification(
                False, count, change.revision, change.revision,
                f"revision {change.revision} does not follow revision {change.revision - 1}: "
                "an entry was replaced or the log reordered",
            )
        if entry_hash(entry_fields(change)) != change.hash:
            return Verification(
                False, count, change.revision, change.revision,
                f"revision {change.revision} was edited: its content no longer matches its hash",
            )
        prev_hash = change.hash
        expected_revision += 1
    counter = current_revision(session)
    if counter != expected_revision - 1:
        return Verification(
            False, count, counter, expected_revision,
            f"the log ends at revision {expected_revision - 1} but revision {counter} was handed out: "
            "the last entries were deleted",
        )
    return Verification(True, count, counter)


def _all_entries(session: Session) -> Iterator[Change]:
    result = session.execute(select(Change).order_by(Change.revision).execution_options(yield_per=1000))
    yield from result.scalars()
