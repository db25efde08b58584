"""The write path's transaction: the rows it locks and reads, the statements it sends, its change-log entry.

The core's write path (`service/core/store.py`) decides; this module is every SQL
statement it needs, in the order a change takes them: lock the account's row, read
what the invariants look at, write, then `log` the change (last: from there to the
commit every other writer waits on the revision counter). A `Transaction` also
carries the facts the change is authorized with (`TransactionFacts`, each read once).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import changelog
from models.changelog import Who
from models.database import Database
from models.errors import Conflict
from models.facts import TransactionFacts
from models.history import recorded_policy
from models.tables import AccountRow, ApiKeyRow, MembershipRow, SupportAgentRow

# Membership changes as plain statements built once, not the ORM's unit of work: the write path is hot.
_MEMBERSHIPS = MembershipRow.__table__
_ONE_MEMBERSHIP = (_MEMBERSHIPS.c.account_id == bindparam("account"), _MEMBERSHIPS.c.user_id == bindparam("user"))
_INSERT_MEMBERSHIP = insert(_MEMBERSHIPS)
_SET_ROLE = update(_MEMBERSHIPS).where(*_ONE_MEMBERSHIP).values(role=bindparam("role"))
_DELETE_MEMBERSHIP = delete(_MEMBERSHIPS).where(*_ONE_MEMBERSHIP)
_MEMBERS = (
    select(MembershipRow.user_id, MembershipRow.role)
    .where(MembershipRow.account_id == bindparam("account"))
    .order_by(MembershipRow.user_id)
)
_WITH_ROLE = select(MembershipRow.user_id).where(
    MembershipRow.account_id == bindparam("account"), MembershipRow.role == bindparam("role")
)
_COUNT_WITH_ROLE = select(func.count()).where(
    MembershipRow.account_id == bindparam("account"), MembershipRow.role == bindparam("role")
)
_ACCOUNT = select(AccountRow).where(AccountRow.id == bindparam("account"))
_LOCKED_ACCOUNT = _ACCOUNT.with_for_update()
_KEY_REVOKED = select(ApiKeyRow.id).where(ApiKeyRow.id == bindparam("key"), ApiKeyRow.revoked_at.is_not(None))


class Transaction:
    """One transaction of the write path (or of an authorized read), over one session."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.facts = TransactionFacts(session)

    # -- locks and reads ------------------------------------------------------

    def account(self, account_id: str, *, lock: bool = False) -> AccountRow | None:
        """The account's row (`lock`: held until commit, one writer per account); its settings join `facts`."""
        account = self.session.execute(_LOCKED_ACCOUNT if lock else _ACCOUNT, {"account": account_id}).scalar()
        if account is not None:
            self.facts.settings[account_id] = (
                account.restrict_subscription_to_payment_manager,
                account.auto_add_subscription_invoices_to_purchases,
            )
        return account

    def membership(self, account_id: str, user: str) -> MembershipRow | None:
        return self.session.get(MembershipRow, (account_id, user))

    def members(self, account_id: str) -> list[dict[str, str]]:
        """`{"user", "role"}` of every member, in user order."""
        return [{"user": user, "role": role} for user, role in self.session.execute(_MEMBERS, {"account": account_id})]

    def holder_of(self, account_id: str, role: str) -> str | None:
        """A member holding `role` on the account (its payment manager: the only one), or None."""
        return self.session.execute(_WITH_ROLE, {"account": account_id, "role": role}).scalar()

    def count_with_role(self, account_id: str, role: str) -> int:
        return self.session.execute(_COUNT_WITH_ROLE, {"account": account_id, "role": role}).scalar_one()

    def is_support_agent(self, user: str) -> bool:
        return self.session.get(SupportAgentRow, user) is not None

    def api_key(self, key_id: str) -> ApiKeyRow | None:
        return self.session.get(ApiKeyRow, key_id)

    def key_revoked(self, key_id: str) -> bool:
        """Whether a stored API key of this id is revoked, read now (not from the session's memory): on PostgreSQL
        each statement sees every commit before it, so after this transaction's locks it sees a revocation that beat it."""
        return self.session.execute(_KEY_REVOKED, {"key": key_id}).first() is not None

    def recorded_policy(self) -> tuple[int, str, str] | None:
        """The policy in force as the log records it: (revision, sha256, text)."""
        return recorded_policy(self.session)

    def current_revision(self) -> int:
        return changelog.current_revision(self.session)

    def lock_counter(self) -> None:
        """Take the revision counter's lock now, for a change with no account row to lock."""
        changelog.lock_counter(self.session)

    # -- statements -----------------------------------------------------------

    def insert_account(self, account_id: str, name: str, *, restricted: bool, auto_add: bool) -> AccountRow | None:
        """A new account row; None if another process took the id first."""
        account = AccountRow(
            id=account_id,
            name=name,
            restrict_subscription_to_payment_manager=restricted,
            auto_add_subscription_invoices_to_purchases=auto_add,
        )
        self.session.add(account)
        try:
            self.session.flush()
        except IntegrityError:
            return None
        return account

    def insert_membership(self, account_id: str, user: str, role: str) -> None:
        self.session.execute(_INSERT_MEMBERSHIP, {"account_id": account_id, "user_id": user, "role": role})

    def set_role(self, account_id: str, user: str, role: str) -> None:
        self.session.execute(_SET_ROLE, {"account": account_id, "user": user, "role": role})

    def delete_membership(self, account_id: str, user: str) -> None:
        self.session.execute(_DELETE_MEMBERSHIP, {"account": account_id, "user": user})

    def set_settings(self, account: AccountRow, values: dict[str, bool]) -> None:
        """Write the billing settings `values` names onto the (locked) account's row."""
        for name, value in values.items():
            setattr(account, name, value)
        self.session.flush()

    def add_support_agent(self, user: str) -> None:
        self.session.add(SupportAgentRow(user_id=user))
        self.session.flush()

    def remove_support_agent(self, user: str) -> bool:
        """Remove the user's support-agent row; False if there was none."""
        agent = self.session.get(SupportAgentRow, user)
        if agent is None:
            return False
        self.session.delete(agent)
        self.session.flush()
        return True

    def insert_api_key(self, key_id: str, *, name: str, secret_sha256: str, scopes: str) -> None:
        self.session.add(
            ApiKeyRow(id=key_id, name=name, secret_sha256=secret_sha256, scopes=scopes, created_at=changelog.now())
        )
        self.session.flush()

    def revoke_api_key(self, key: ApiKeyRow) -> None:
        key.revoked_at = changelog.now()
        self.session.flush()

    def log(
        self,
        who: Who,
        kind: str,
        *,
        account: str | None = None,
        user: str | None = None,
        before: dict[str, Any],
        after: dict[str, Any],
    ) -> int:
        """Append the change's entry and answer its revision. Last in the transaction: it holds the counter."""
        return changelog.append(self.session, who, kind, account=account, user=user, before=before, after=after)

    @property
    def revision(self) -> int | None:
        """The revision this transaction logged, if it logged one."""
        return self.session.info.get("revision")


@contextmanager
def write_transaction(db: Database) -> Iterator[Transaction]:
    """One write transaction: committed on success, rolled back on any error.

    A change the schema's own constraints refuse (one payment manager, one role per user
    and account) is one a concurrent change slipped past the checks: `Conflict`, nothing written.
    """
    try:
        with db.write() as session:
            yield Transaction(session)
    except IntegrityError as error:
        raise Conflict("the change conflicts with a concurrent change; nothing changed", "concurrent_change") from error


@contextmanager
def read_transaction(db: Database) -> Iterator[Transaction]:
    """A read transaction, for answers that read and authorize several facts at once."""
    with db.read() as session:
        yield Transaction(session)
