"""The facts an access review reads, all from one read transaction: who holds a role where, who is support.

An access review (`service/core/access_review.py`) asks the policy what each of these
people may do; the revision it answers is the one these facts were read at.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from models.changelog import current_revision
from models.database import Database
from models.tables import AccountRow, MembershipRow, SupportAgentRow


@dataclass(frozen=True)
class AccountAccess:
    """An account's settings, its members (user, role) in user order, and every support agent."""

    revision: int
    restricted: bool
    auto_add: bool
    members: list[tuple[str, str]]
    support_agents: list[str]


@dataclass(frozen=True)
class UserAccess:
    """A user's memberships (account, role, restricted, auto_add) in account order, and whether they are support."""

    revision: int
    support_agent: bool
    memberships: list[tuple[str, str, bool, bool]]


def account_access(db: Database, account_id: str) -> AccountAccess | None:
    """None when the account does not exist."""
    with db.read() as session:
        account = session.get(AccountRow, account_id)
        if account is None:
            return None
        members = session.execute(
            select(MembershipRow.user_id, MembershipRow.role)
            .where(MembershipRow.account_id == account_id)
            .order_by(MembershipRow.user_id)
        ).all()
        support = session.execute(select(SupportAgentRow.user_id).order_by(SupportAgentRow.user_id)).scalars().all()
        return AccountAccess(
            revision=current_revision(session),
            restricted=account.restrict_subscription_to_payment_manager,
            auto_add=account.auto_add_subscription_invoices_to_purchases,
            members=[(user, role) for user, role in members],
            support_agents=list(support),
        )


def user_access(db: Database, user_id: str) -> UserAccess:
    with db.read() as session:
        rows = session.execute(
            select(
                MembershipRow.account_id, MembershipRow.role, AccountRow.restrict_subscription_to_payment_manager,
                AccountRow.auto_add_subscription_invoices_to_purchases,
            )
            .join(AccountRow, AccountRow.id == MembershipRow.account_id)
            .where(MembershipRow.user_id == user_id)
            .order_by(MembershipRow.account_id)
        ).all()
        support = session.get(SupportAgentRow, user_id) is not None
        return UserAccess(
            revision=current_revision(session),
            support_agent=support,
            memberships=[(account, role, restricted, auto_add) for account, role, restricted, auto_add in rows],
        )
