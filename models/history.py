"""Facts as they were at a past revision, rebuilt from the change log alone.

Each answer is the `after` of the latest change-log entry at or before the
revision that touched the fact: an account's settings come from its creation
and its billing-settings updates, a role from the account's creation and the
member changes, a support agent from the support-agent changes. A bulk import's
entries (kind `import`, one per fact) have the same shapes: an account's (no user)
holds its name and settings, a membership's (account and user) its role, a
support agent's (no account) `support_agent`. The current
tables are never read, so the answer is what the log says, whatever happened
since.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from models.changelog import current_revision
from models.database import Database
from models.errors import RevisionAhead
from models.tables import ChangeRow

SETTINGS_KINDS = ("account.create", "billing_settings.update")
ROLE_KINDS = ("account.create", "member.invite", "member.change_role", "member.remove")
SUPPORT_KINDS = ("support_agent.add", "support_agent.remove")
POLICY_KIND = "policy.load"
IMPORT_KIND = "import"  # models/bulk_import.py
_SETTINGS_CHANGES = or_(ChangeRow.kind.in_(SETTINGS_KINDS), and_(ChangeRow.kind == IMPORT_KIND, ChangeRow.user_id.is_(None)))
_ROLE_CHANGES = or_(ChangeRow.kind.in_(ROLE_KINDS), and_(ChangeRow.kind == IMPORT_KIND, ChangeRow.user_id.is_not(None)))
_SUPPORT_CHANGES = or_(
    ChangeRow.kind.in_(SUPPORT_KINDS), and_(ChangeRow.kind == IMPORT_KIND, ChangeRow.account_id.is_(None))
)


class FactsAsOf:
    """A FactSource answering as of `revision`."""

    def __init__(self, session: Session, revision: int) -> None:
        self.session = session
        self.revision = revision

    def _latest(self, *conditions) -> ChangeRow | None:
        return self.session.execute(
            select(ChangeRow).where(ChangeRow.revision <= self.revision, *conditions).order_by(ChangeRow.revision.desc()).limit(1)
        ).scalar()

    def account_settings(self, account_id: str) -> tuple[bool, bool] | None:
        change = self._latest(ChangeRow.account_id == account_id, _SETTINGS_CHANGES)
        if change is None:
            return None
        after = json.loads(change.after)
        return (
            bool(after["restrict_subscription_to_payment_manager"]),
            bool(after["auto_add_subscription_invoices_to_purchases"]),
        )

    def role(self, user_id: str, account_id: str) -> str | None:
        change = self._latest(
            ChangeRow.account_id == account_id, ChangeRow.user_id == user_id, _ROLE_CHANGES
        )
        if change is None:
            return None
        return "admin" if change.kind == "account.create" else json.loads(change.after)["role"]

    def is_support_agent(self, user_id: str) -> bool:
        change = self._latest(ChangeRow.user_id == user_id, _SUPPORT_CHANGES)
        return change is not None and bool(json.loads(change.after)["support_agent"])


@contextmanager
def facts_as_of(db: Database, revision: int) -> Iterator[FactsAsOf]:
    """The facts as of `revision`, in one read transaction; `RevisionAhead` if the log has not reached it."""
    with db.read() as session:
        latest = current_revision(session)
        if revision > latest:
            raise RevisionAhead(f"as_of_revision {revision} is ahead of the latest revision, {latest}")
        yield FactsAsOf(session, revision)


def read_recorded_policy(db: Database, revision: int | None = None) -> tuple[int, str, str] | None:
    """`recorded_policy`, in a read transaction of its own."""
    with db.read() as session:
        return recorded_policy(session, revision)


def recorded_policy(session: Session, revision: int | None = None) -> tuple[int, str, str] | None:
    """The policy in force at `revision` (default: now) as recorded in the log: (revision, sha256, text)."""
    query = select(ChangeRow).where(ChangeRow.kind == POLICY_KIND)
    if revision is not None:
        query = query.where(ChangeRow.revision <= revision)
    change = session.execute(query.order_by(ChangeRow.revision.desc()).limit(1)).scalar()
    if change is None:
        return None
    after = json.loads(change.after)
    return change.revision, after["sha256"], after["text"]


def policy_versions(db: Database) -> list[dict]:
    """Every policy taken up, newest first: revision, time, sha256, source, and what it changed (None: the first)."""
    with db.read() as session:
        rows = session.execute(
            select(ChangeRow.revision, ChangeRow.at, ChangeRow.after)
            .where(ChangeRow.kind == POLICY_KIND)
            .order_by(ChangeRow.revision.desc())
        )
        versions = []
        for revision, at, after in rows:
            recorded = json.loads(after)
            versions.append(
                {
                    "revision": revision,
                    "at": at,
                    "sha256": recorded.get("sha256"),
                    "source": recorded.get("source"),
                    "changes": recorded.get("changes"),
                }
            )
        return versions
