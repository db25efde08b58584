"""Can an answer be trusted? What an explanation or an answer as of a revision must say about its records.

An answer that rests on records found altered says so, in `warnings`: the change
log broken at or before the revision it reads, or (for an answer on the current
facts, which come from the tables) the stored facts of the account it is about
differing from what the log records. An answer as of a revision reads the log alone. An account that does not exist
(at that revision) is said not to exist, never given made-up settings.
"""

from __future__ import annotations

from models.verification import read_account_drift
from service.core.records import Records


def missing_account_sentence(account: str, as_of: int | None) -> str:
    when = f" as of revision {as_of}" if as_of is not None else ""
    return f"account {account} does not exist{when}: it has no settings and no members"


def record_warnings(records: Records, revision: int, accounts: tuple[str, ...] = ()) -> list[str]:
    """Warnings for an answer reading the records up to `revision` about `accounts` (bounded work: see Records.status)."""
    warnings: list[str] = []
    status = records.status()
    verification = status.verification
    if status.altered_at_or_before(revision):
        warnings.append(
            f"the change log was found altered at revision {verification.first_bad_revision}, at or before the "
            f"revision this answer reads ({revision}): {verification.problem}. This answer cannot be trusted."
        )
    for account in accounts:
        count, shown = read_account_drift(records.db, account)
        if count:
            warnings.append(
                f"the stored facts of account {account} differ from what the change log records ({count} "
                f"difference{'s' if count > 1 else ''}: {'; '.join(shown)}). This answer cannot be trusted."
            )
    return warnings
