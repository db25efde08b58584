"""The write path: every change to the facts, its invariants and its change-log entry, in one transaction.

A change made for a person (`acting_user`) is first authorized with the same
policy as any decision, on the facts as they are inside the transaction. Then
the invariants of the data are checked; a change that would break one is
refused with `Conflict` and nothing is written.

Concurrency: a change to an account first locks the account's row
(`SELECT ... FOR UPDATE` on PostgreSQL; SQLite's BEGIN IMMEDIATE serialises
every writer), so two changes to one account never check their invariants
against the same stale state. The change log's revision counter is locked
last, just before commit (see `changelog.append`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import changelog
from models.changelog import Who
from models.db import Database
from models.errors import Conflict, Forbidden, NotFound
from models.facts import TransactionFacts
from models.history import POLICY_KIND, recorded_policy
from models.tables import Account, Change, Membership, SupportAgent
from policies.engine import Policy

PAYMENT_MANAGER_PROTECTED = (
    "Subscription Manager cannot be deleted when the admin does not have access to manage subscriptions. "
    "Please log in as a Subscription Manager and enable subscription access for the admin via the subscription page"
)
LEAK_WARNING = (
    "Subscription management is restricted to the payment manager, but subscription invoices are still added "
    "to this account's purchases: its admins, collaborators and readers can see what the payment manager pays."
)
SETTINGS = ("restrict_subscription_to_payment_manager", "auto_add_subscription_invoices_to_purchases")
# Membership changes as plain statements built once, not the ORM's unit of work: the write path is hot.
_MEMBERSHIPS = Membership.__table__
_ONE_MEMBERSHIP = (_MEMBERSHIPS.c.account_id == bindparam("account"), _MEMBERSHIPS.c.user_id == bindparam("user"))
_INSERT_MEMBERSHIP = insert(_MEMBERSHIPS)
_SET_ROLE = update(_MEMBERSHIPS).where(*_ONE_MEMBERSHIP).values(role=bindparam("role"))
_DELETE_MEMBERSHIP = delete(_MEMBERSHIPS).where(*_ONE_MEMBERSHIP)


@dataclass(frozen=True)
class Written:
    """What a write answers: the resulting document and the revision it is visible from."""

    document: dict
    revision: int


class Store:
    def __init__(
        self, db: Database, policy: Callable[[], Policy], on_commit: Callable[[int], None] = lambda revision: None
    ) -> None:
        self.db = db
        self.policy = policy
        self.on_commit = on_commit  # told every revision this store commits

    @contextmanager
    def _write(self) -> Iterator[Session]:
        """One write transaction; once it has committed a change, `on_commit` hears its revision."""
        try:
            with self.db.write() as session:
                yield session
        except IntegrityError as error:
            # The schema's own constraints (one payment manager, one role per user and account)
            # caught what a concurrent change slipped past the checks above: nothing was written.
            raise Conflict("the change conflicts with a concurrent change; nothing changed", "concurrent_change") from error
        if "revision" in session.info:
            self.on_commit(session.info["revision"])

    # -- accounts -----------------------------------------------------------

    def create_account(self, account_id: str, name: str, admin: str, who: Who) -> Written:
        """Sign-up: the account with default billing settings and its first admin."""
        exists = Conflict(f"account {account_id} already exists", "account_exists")
        with self._write() as session:
            if session.get(Account, account_id) is not None:
                raise exists
            account = Account(
                id=account_id,
                name=name,
                restrict_subscription_to_payment_manager=False,
                auto_add_subscription_invoices_to_purchases=True,
            )
            session.add(account)
            try:
                session.flush()
            except IntegrityError as error:  # another process created it first
                raise exists from error
            session.add(Membership(account_id=account_id, user_id=admin, role="admin"))
            session.flush()
            document = _account_document(account, [{"user": admin, "role": "admin"}])
            after = {"name": name, **document["billing_settings"], "admin": admin}
            revision = changelog.append(
                session, who, "account.create", account=account_id, user=admin, before={}, after=after
            )
        return Written(document, revision)

    def account(self, account_id: str, acting_user: str | None) -> Written:
        with self.db.read() as session:
            account = self._account(session, account_id)
            self._require(session, acting_user, "read", "Account", {"id": account_id})
            return Written(
                _account_document(account, self._members(session, account_id)), changelog.current_revision(session)
            )

    # -- billing settings ---------------------------------------------------

    def billing_settings(self, account_id: str, acting_user: str | None) -> Written:
        with self.db.read() as session:
            account = self._account(session, account_id)
            self._require(session, acting_user, "view_subscription", "Account", {"id": account_id})
            return Written(_settings_document(account), changelog.current_revision(session))

    def update_billing_settings(self, account_id: str, values: dict[str, bool], who: Who) -> Written:
        """Change one or both settings. Invariant 2: no restriction without a payment manager."""
        with self._write() as session:
            account = self._account(session, account_id, lock=True)
            self._require(session, who.acting_user, "manage_billing_settings", "Account", {"id": account_id})
            before = {name: getattr(account, name) for name in SETTINGS}
            after = {name: values.get(name, before[name]) for name in SETTINGS}
            if after == before:
                return Written(_settings_document(account), changelog.current_revision(session))
            if after["restrict_subscription_to_payment_manager"] and self._payment_manager(session, account_id) is None:
                raise Conflict(
                    f"account {account_id} has no payment manager: restricting subscription management to the "
                    "payment manager would leave nobody able to manage its subscription",
                    "no_payment_manager",
                )
            for name, value in after.items():
                setattr(account, name, value)
            session.flush()
            revision = changelog.append(
                session, who, "billing_settings.update", account=account_id, before=before, after=after
            )
            return Written(_settings_document(account), revision)

    # -- members ------------------------------------------------------------

    def members(self, account_id: str, acting_user: str | None) -> Written:
        with self.db.read() as session:
            self._account(session, account_id)
            self._require(session, acting_user, "view_members", "Account", {"id": account_id})
            return Written(
                {"account": account_id, "members": self._members(session, account_id)},
                changelog.current_revision(session),
            )

    def invite(self, account_id: str, user: str, role: str, who: Who) -> Written:
        """Add a member. Invariants 4 (one payment manager) and 5 (one role per user and account)."""
        with self._write() as session:
            self._account(session, account_id, lock=True)
            self._require(session, who.acting_user, "manage_members", "Account", {"id": account_id})
            existing = session.get(Membership, (account_id, user))
            if existing is not None:
                raise Conflict(
                    f"{user} is already {existing.role} of account {account_id}; nothing changed "
                    "(one role per user and account: change the role instead)",
                    "already_member",
                )
            if role == "payment_manager":
                self._refuse_second_payment_manager(session, account_id)
            session.execute(_INSERT_MEMBERSHIP, {"account_id": account_id, "user_id": user, "role": role})
            revision = changelog.append(
                session, who, "member.invite", account=account_id, user=user, before={"role": None}, after={"role": role}
            )
            return Written({"account": account_id, "user": user, "role": role}, revision)

    def change_role(self, account_id: str, user: str, role: str, who: Who) -> Written:
        """Give a member another role. Invariants 1, 3 and 4."""
        with self._write() as session:
            account = self._account(session, account_id, lock=True)
            membership = self._membership(session, account_id, user)
            self._refuse_to_touch_protected_payment_manager(session, account, membership, who)
            self._require(session, who.acting_user, "change_role", "Membership", {"account": account_id, "user": user})
            if membership.role == role:
                return Written(
                    {"account": account_id, "user": user, "role": role}, changelog.current_revision(session)
                )
            if membership.role == "admin":
                self._refuse_to_lose_last_admin(session, account_id, user)
            if role == "payment_manager":
                self._refuse_second_payment_manager(session, account_id)
            before = {"role": membership.role}
            session.execute(_SET_ROLE, {"account": account_id, "user": user, "role": role})
            revision = changelog.append(
                session, who, "member.change_role", account=account_id, user=user, before=before, after={"role": role}
            )
            return Written({"account": account_id, "user": user, "role": role}, revision)

    def remove_member(self, account_id: str, user: str, who: Who) -> Written:
        """Remove a member. Invariants 1 and 3."""
        with self._write() as session:
            account = self._account(session, account_id, lock=True)
            membership = self._membership(session, account_id, user)
            self._refuse_to_touch_protected_payment_manager(session, account, membership, who)
            self._require(session, who.acting_user, "remove", "Membership", {"account": account_id, "user": user})
            if membership.role == "admin":
                self._refuse_to_lose_last_admin(session, account_id, user)
            before = {"role": membership.role}
            session.execute(_DELETE_MEMBERSHIP, {"account": account_id, "user": user})
            revision = changelog.append(
                session, who, "member.remove", account=account_id, user=user, before=before, after={"role": None}
            )
            return Written({"account": account_id, "user": user, "role": None}, revision)

    # -- support agents -----------------------------------------------------

    def add_support_agent(self, user: str, who: Who) -> tuple[Written, bool]:
        """Make `user` a support agent; answers whether anything changed."""
        with self._write() as session:
            changelog.lock_counter(session)
            if session.get(SupportAgent, user) is not None:
                return Written({"user": user, "support_agent": True}, changelog.current_revision(session)), False
            session.add(SupportAgent(user_id=user))
            session.flush()
            revision = changelog.append(
                session, who, "support_agent.add", user=user,
                before={"support_agent": False}, after={"support_agent": True},
            )
            return Written({"user": user, "support_agent": True}, revision), True

    def remove_support_agent(self, user: str, who: Who) -> Written:
        with self._write() as session:
            changelog.lock_counter(session)
            agent = session.get(SupportAgent, user)
            if agent is None:
                raise NotFound(f"{user} is not a support agent", "support_agent_not_found")
            session.delete(agent)
            session.flush()
            revision = changelog.append(
                session, who, "support_agent.remove", user=user,
                before={"support_agent": True}, after={"support_agent": False},
            )
            return Written({"user": user, "support_agent": False}, revision)

    def support_agents(self) -> list[str]:
        with self.db.read() as connection:
            return list(connection.execute(select(SupportAgent.user_id).order_by(SupportAgent.user_id)).scalars())

    # -- the policy ---------------------------------------------------------

    def record_policy(self, policy: Policy, who: Who, changes: list[str] | None = None) -> int | None:
        """Record `policy` as the policy in force, unless it already is; answers the new revision or None.

        `changes`: what it changes against the previous one, in words (a policy diff).
        """
        with self._write() as session:
            changelog.lock_counter(session)
            recorded = recorded_policy(session)
            if recorded is not None and recorded[1] == policy.sha256:
                return None
            return changelog.append(
                session, who, POLICY_KIND,
                before={"sha256": recorded[1] if recorded else None},
                after={
                    "sha256": policy.sha256, "text": policy.text, "source": policy.source_name,
                    **({"changes": changes} if changes is not None else {}),
                },
            )

    # -- the change log -----------------------------------------------------

    def changes(self, account_id: str | None, after: int, limit: int) -> tuple[list[dict], int]:
        """Entries after revision `after`, oldest first, at most `limit`; and the latest revision."""
        with self.db.read() as session:
            query = select(Change).where(Change.revision > after).order_by(Change.revision).limit(limit)
            if account_id is not None:
                query = query.where(Change.account_id == account_id)
            entries = [changelog.entry_document(change) for change in session.execute(query).scalars()]
            return entries, changelog.current_revision(session)

    def verify_changes(self) -> changelog.Verification:
        with self.db.read() as session:
            return changelog.verify(session)

    # -- helpers ------------------------------------------------------------

    def _account(self, session: Session, account_id: str, lock: bool = False) -> Account:
        query = select(Account).where(Account.id == account_id)
        if lock:
            query = query.with_for_update()
        account = session.execute(query).scalar_one_or_none()
        if account is None:
            raise NotFound(f"account {account_id} does not exist", "account_not_found")
        _facts(session).settings[account_id] = (
            account.restrict_subscription_to_payment_manager,
            account.auto_add_subscription_invoices_to_purchases,
        )
        return account

    def _membership(self, session: Session, account_id: str, user: str) -> Membership:
        membership = session.get(Membership, (account_id, user))
        if membership is None:
            raise NotFound(f"{user} is not a member of account {account_id}", "member_not_found")
        return membership

    def _members(self, session: Session, account_id: str) -> list[dict]:
        rows = session.execute(
            select(Membership.user_id, Membership.role)
            .where(Membership.account_id == account_id)
            .order_by(Membership.user_id)
        )
        return [{"user": user, "role": role} for user, role in rows]

    def _payment_manager(self, session: Session, account_id: str) -> str | None:
        return session.execute(
            select(Membership.user_id).where(
                Membership.account_id == account_id, Membership.role == "payment_manager"
            )
        ).scalar()

    def _allowed(self, session: Session, user: str, action: str, resource_type: str, attributes: dict) -> bool:
        policy = self.policy()
        return policy.is_allowed(policy.situation(_facts(session), resource_type, user, attributes), action)

    def _require(
        self, session: Session, acting_user: str | None, action: str, resource_type: str, attributes: dict
    ) -> None:
        """403 unless the policy grants `action` to the acting user; a system change (no acting user) passes."""
        if acting_user is None or self._allowed(session, acting_user, action, resource_type, attributes):
            return
        raise Forbidden(f"{acting_user} may not {action} this {resource_type}", "forbidden")

    def _refuse_to_touch_protected_payment_manager(
        self, session: Session, account: Account, membership: Membership, who: Who
    ) -> None:
        """Invariant 1, answered with the product's own words.

        It applies to system changes and to whoever manages the members (an
        admin); anyone else is simply not allowed (403) and learns nothing more.
        """
        if membership.role != "payment_manager" or not account.restrict_subscription_to_payment_manager:
            return
        if who.acting_user is None or self._allowed(
            session, who.acting_user, "manage_members", "Account", {"id": account.id}
        ):
            raise Conflict(PAYMENT_MANAGER_PROTECTED, "payment_manager_protected")

    def _refuse_to_lose_last_admin(self, session: Session, account_id: str, user: str) -> None:
        """Invariant 3: an account always keeps at least one admin."""
        admins = session.execute(
            select(func.count()).where(Membership.account_id == account_id, Membership.role == "admin")
        ).scalar_one()
        if admins <= 1:
            raise Conflict(
                f"{user} is the last admin of account {account_id}: an account always keeps at least one admin",
                "last_admin",
            )

    def _refuse_second_payment_manager(self, session: Session, account_id: str) -> None:
        """Invariant 4: an account has at most one payment manager."""
        current = self._payment_manager(session, account_id)
        if current is not None:
            raise Conflict(
                f"account {account_id} already has a payment manager ({current}): an account has at most one",
                "payment_manager_exists",
            )


def _facts(session: Session) -> TransactionFacts:
    """The facts this transaction authorizes with (read before it changes anything)."""
    if "facts" not in session.info:
        session.info["facts"] = TransactionFacts(session)
    return session.info["facts"]


def _settings_document(account: Account) -> dict:
    document = {"account": account.id, **{name: bool(getattr(account, name)) for name in SETTINGS}}
    document["warnings"] = (
        [LEAK_WARNING]
        if document["restrict_subscription_to_payment_manager"]
        and document["auto_add_subscription_invoices_to_purchases"]
        else []
    )
    return document


def _account_document(account: Account, members: list[dict]) -> dict:
    settings = {name: bool(getattr(account, name)) for name in SETTINGS}
    return {"id": account.id, "name": account.name, "billing_settings": settings, "members": members}
