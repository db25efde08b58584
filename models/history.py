"""Facts as they were at a past revision, rebuilt from the change log alone.

Each answer is the `after` of the latest change-log entry at or before the
revision that touched the fact: an account's settings come from its creation
and its billing-settings updates, a role from the account's creation and the
member changes, a support agent from the support-agent changes. The current
tables are never read, so the answer is what the log says, whatever happened
since.
"""

from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.tables import Change

SETTINGS_KINDS = ("account.create", "billing_settings.update")
ROLE_KINDS = ("account.create", "member.invite", "member.change_role", "member.remove")
SUPPORT_KINDS = ("support_agent.add", "support_agent.remove")
POLICY_KIND = "policy.load"


class FactsAsOf:
    """A FactSource answering as of `revision`."""

    def __init__(self, session: Session, revision: int) -> None:
        self.session = session
        self.revision = revision

    def _latest(self, *conditions) -> Change | None:
        return self.session.execute(
            select(Change).where(Change.revision <= self.revision, *conditions).order_by(Change.revision.desc()).limit(1)
        ).scalar()

    def account_settings(self, account_id: str) -> tuple[bool, bool] | None:
        change = self._latest(Change.account_id == account_id, Change.kind.in_(SETTINGS_KINDS))
        if change is None:
            return None
        after = json.loads(change.after)
        return (
            bool(after["restrict_subscription_to_payment_manager"]),
            bool(after["auto_add_subscription_invoices_to_purchases"]),
        )

    def role(self, user_id: str, account_id: str) -> str | None:
        change = self._latest(
            Change.account_id == account_id, Change.user_id == user_id, Change.kind.in_(ROLE_KINDS)
        )
        if change is None:
            return None
        return "admin" if change.kind == "account.create" else json.loads(change.after)["role"]

    def is_support_agent(self, user_id: str) -> bool:
        change = self._latest(Change.user_id == user_id, Change.kind.in_(SUPPORT_KINDS))
        return change is not None and bool(json.loads(change.after)["support_agent"])


def recorded_policy(session: Session, revision: int | None = None) -> tuple[int, str, str] | None:
    """The policy in force at `revision` (default: now) as recorded in the log: (revision, sha256, text)."""
    query = select(Change).where(Change.kind == POLICY_KIND)
    if revision is not None:
        query = query.where(Change.revision <= revision)
    change = session.execute(query.order_by(Change.revision.desc()).limit(1)).scalar()
    if change is None:
        return None
    after = json.loads(change.after)
    return change.revision, after["sha256"], after["text"]
