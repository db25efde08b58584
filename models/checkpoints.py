"""Checkpoints of the change log and the verifications made: what is stored and read (migration 0007).

A checkpoint is an entry's revision and hash, noted at least every 1,000 changes
(every multiple of 1,000) or 5 minutes, with the signature the core computes. A
verification row is one walk of the chain; the latest good one is where the next
walk starts, so a page checks the tail only.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from sqlalchemy import Connection, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from models.changelog import now
from models.database import Database
from models.tables import ChangeRow, CheckpointRow, VerificationRow

EVERY = 1000

_CHECKPOINTS = CheckpointRow.__table__
_VERIFICATIONS = VerificationRow.__table__


@dataclass(frozen=True)
class Checkpoint:
    revision: int
    hash: str
    at: str
    signature: str | None


def latest_checkpoint(connection: Connection) -> Checkpoint | None:
    row = connection.execute(
        select(_CHECKPOINTS.c.revision, _CHECKPOINTS.c.hash, _CHECKPOINTS.c.at, _CHECKPOINTS.c.signature)
        .order_by(_CHECKPOINTS.c.revision.desc()).limit(1)
    ).first()
    return Checkpoint(*row) if row else None


def write_checkpoints(db: Database, sign: Callable[[int, str], str | None], *, head_too: bool) -> int:
    """Note every multiple of 1,000 not yet noted up to the head, and the head itself if `head_too`.

    Answers how many were written. Two processes doing it at once write each once.
    """
    with db.write_engine.begin() as connection:
        last = connection.execute(select(func.max(_CHECKPOINTS.c.revision))).scalar() or 0
        head = connection.execute(select(func.max(ChangeRow.revision))).scalar() or 0
        wanted = list(range((last // EVERY + 1) * EVERY, head + 1, EVERY))
        if head_too and head > last and (not wanted or wanted[-1] != head):
            wanted.append(head)
        if not wanted:
            return 0
        at = now()
        rows = []
        for start in range(0, len(wanted), 500):
            found = connection.execute(
                select(ChangeRow.revision, ChangeRow.hash).where(ChangeRow.revision.in_(wanted[start:start + 500]))
            )
            rows += [
                {"revision": revision, "hash": hash_, "at": at, "signature": sign(revision, hash_)}
                for revision, hash_ in found
            ]
        if rows:
            dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
            connection.execute(dialect.insert(_CHECKPOINTS).on_conflict_do_nothing(), rows)
        return len(rows)


def all_checkpoints(connection: Connection) -> Iterator[Checkpoint]:
    """Every checkpoint, in revision order, streamed."""
    rows = connection.execution_options(stream_results=True, yield_per=5000).execute(
        select(_CHECKPOINTS.c.revision, _CHECKPOINTS.c.hash, _CHECKPOINTS.c.at, _CHECKPOINTS.c.signature)
        .order_by(_CHECKPOINTS.c.revision)
    )
    for row in rows:
        yield Checkpoint(*row)


@dataclass(frozen=True)
class VerificationRecord:
    """A verification as stored: `complete` walks compared the fact tables too."""

    id: int
    at: str
    complete: bool
    ok: bool
    checked_from: int
    revision: int
    hash: str
    entries: int
    first_bad_revision: int | None
    problem: str | None
    drift_count: int
    drift: tuple[str, ...]
    signature: str | None


def record_verification(db: Database, **fields) -> None:
    """Store one verification; `drift` is a list of strings."""
    fields = {**fields, "drift": json.dumps(list(fields.get("drift", ()))), "at": fields.get("at") or now()}
    with db.write_engine.begin() as connection:
        connection.execute(insert(_VERIFICATIONS), fields)


def latest_verifications(
    connection: Connection, accept: Callable[[VerificationRecord], bool]
) -> tuple[VerificationRecord | None, VerificationRecord | None, VerificationRecord | None]:
    """(the latest verification, the latest good one, the latest complete one), each among those `accept`ed.

    Each is read newest first and normally found in the first row: the table grows by a row
    each time a page verifies a new tail, and is never read whole.
    """

    def newest(*conditions) -> VerificationRecord | None:
        rows = connection.execution_options(stream_results=True, yield_per=20).execute(
            select(_VERIFICATIONS).where(*conditions).order_by(_VERIFICATIONS.c.id.desc())
        )
        try:
            for row in rows:
                record = _record(row)
                if accept(record):
                    return record
            return None
        finally:
            rows.close()

    return newest(), newest(_VERIFICATIONS.c.ok.is_(True)), newest(_VERIFICATIONS.c.complete.is_(True))


def _record(row) -> VerificationRecord:
    values = row._mapping
    return VerificationRecord(
        id=values["id"], at=values["at"], complete=bool(values["complete"]), ok=bool(values["ok"]),
        checked_from=values["checked_from"], revision=values["revision"], hash=values["hash"],
        entries=values["entries"], first_bad_revision=values["first_bad_revision"], problem=values["problem"],
        drift_count=values["drift_count"], drift=tuple(json.loads(values["drift"])), signature=values["signature"],
    )
