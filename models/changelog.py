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
from dataclasses import dataclass
from datetime import UTC, datetime
from hashlib import sha256
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy.orm import Session

from models.database import Database
from models.tables import ChangeRow, RevisionCounterRow

GENESIS_HASH = "0" * 64
# Built once: the write path is hot. Table-level statements skip the ORM's bulk machinery.
_NEXT_REVISION = (
    update(RevisionCounterRow.__table__)
    .where(RevisionCounterRow.__table__.c.id == 1)
    .values(revision=RevisionCounterRow.__table__.c.revision + 1)
    .returning(RevisionCounterRow.__table__.c.revision)
)
_HASH_OF = select(ChangeRow.__table__.c.hash).where(ChangeRow.__table__.c.revision == bindparam("revision"))
_INSERT_ENTRY = insert(ChangeRow.__table__)
NOTIFY_CHANNEL = "authz_changes"  # see migrations 0004 and 0009
HASHED_FIELDS = ("revision", "at", "kind", "account", "user", "acting_user", "api_key", "before", "after", "prev_hash")


@dataclass(frozen=True)
class Who:
    """Who asked for a change: the person it was made for (None: a system change) and the API key."""

    acting_user: str | None
    api_key: str | None


# Built once (json.dumps builds an encoder per call): bulk import hashes millions of entries.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_json(value: Any) -> str:
    return _CANONICAL.encode(value)


def entry_hash(fields: dict[str, Any]) -> str:
    """The sha256 of an entry's content, including the previous entry's hash."""
    return hashlib.sha256(canonical_json({name: fields[name] for name in HASHED_FIELDS}).encode()).hexdigest()


_encode_string = json.encoder.encode_basestring  # what json.dumps(ensure_ascii=False) writes for a str


def row_hash(row: tuple) -> str:
    """`entry_hash` of a stored row (its hashed fields in HASHED_FIELDS order), without building a dict.

    Verification hashes millions of rows: this writes the same canonical JSON directly
    (a test keeps the two equal). Every field is a string or None, but `revision`.
    """
    revision, at, kind, account, user, acting_user, api_key, before, after, prev_hash = row[:10]
    text = "".join((
        '{"account":', "null" if account is None else _encode_string(account),
        ',"acting_user":', "null" if acting_user is None else _encode_string(acting_user),
        ',"after":', "null" if after is None else _encode_string(after),
        ',"api_key":', "null" if api_key is None else _encode_string(api_key),
        ',"at":', "null" if at is None else _encode_string(at),
        ',"before":', "null" if before is None else _encode_string(before),
        ',"kind":', "null" if kind is None else _encode_string(kind),
        ',"prev_hash":', "null" if prev_hash is None else _encode_string(prev_hash),
        ',"revision":', str(int(revision)),
        ',"user":', "null" if user is None else _encode_string(user), "}",
    ))
    return sha256(text.encode()).hexdigest()


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
    prev_hash = hash_of(session, revision - 1)
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
    )  # PostgreSQL: the insert notifies listeners at commit (trigger authz_notify_changes, migration 0009)
    session.info["revision"] = revision
    return revision


def lock_counter(session: Session) -> None:
    """Take the counter's lock now, for a change with no account row to lock (support agents, API keys)."""
    session.execute(select(RevisionCounterRow.revision).where(RevisionCounterRow.id == 1).with_for_update())


def hash_of(session: Connection | Session, revision: int) -> str:
    """The stored hash of entry `revision`; the genesis hash for revision 0, before the first entry."""
    return GENESIS_HASH if revision == 0 else session.execute(_HASH_OF, {"revision": revision}).scalar_one()


def current_revision(connection: Connection | Session) -> int:
    return connection.execute(select(RevisionCounterRow.revision).where(RevisionCounterRow.id == 1)).scalar_one()


def entry_fields(change: ChangeRow) -> dict[str, Any]:
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


def entry_document(change: ChangeRow) -> dict[str, Any]:
    """An entry as the API and the command-line tool show it."""
    fields = entry_fields(change)
    fields["before"] = json.loads(change.before)
    fields["after"] = json.loads(change.after)
    fields["hash"] = change.hash
    return fields


def entries(db: Database, *, account: str | None, after: int, limit: int) -> tuple[list[dict[str, Any]], int]:
    """Entries after revision `after` (of one account, if given), oldest first, at most `limit`; and the latest revision."""
    with db.read() as session:
        query = select(ChangeRow).where(ChangeRow.revision > after).order_by(ChangeRow.revision).limit(limit)
        if account is not None:
            query = query.where(ChangeRow.account_id == account)
        found = [entry_document(change) for change in session.execute(query).scalars()]
        return found, current_revision(session)
