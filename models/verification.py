"""Is the record intact? The change log's hash chain, then the fact tables against what the log records.

An entry edited, deleted or reordered breaks the chain (`verify_chain`); a fact
changed in the tables behind the log's back shows as drift (`history.facts_drift`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.changelog import GENESIS_HASH, current_revision, entry_fields, entry_hash
from models.database import Database
from models.history import facts_drift
from models.tables import ChangeRow


@dataclass(frozen=True)
class Verification:
    """What a walk of the log found: intact, or the first revision affected and the problem."""

    ok: bool
    entries: int
    revision: int
    first_bad_revision: int | None = None
    problem: str | None = None
    drift: tuple[str, ...] = ()


def verify_log(db: Database) -> Verification:
    """`verify`, in a read transaction of its own."""
    with db.read() as session:
        return verify(session)


def verify(session: Session) -> Verification:
    """Walk the whole log and report the first entry that was edited, deleted or reordered.

    Then, if the log is intact, rebuild the facts from it and report where the
    fact tables differ (a fact changed in the database behind the log's back).
    """
    chain = verify_chain(session)
    if not chain.ok:
        return chain
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


def _all_entries(session: Session) -> Iterator[ChangeRow]:
    result = session.execute(select(ChangeRow).order_by(ChangeRow.revision).execution_options(yield_per=1000))
    yield from result.scalars()
