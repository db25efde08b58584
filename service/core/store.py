"""The write path: every change to the facts, its invariants and its change-log entry, in one transaction.

Every write takes the same steps, in the same order: lock, authorize, refuse by a
named invariant, write, log last.

- **Lock**: a change to an account first locks the account's row (`SELECT ... FOR
  UPDATE` on PostgreSQL; SQLite's BEGIN IMMEDIATE serialises every writer), so two
  changes to one account never check their invariants against the same stale state.
- **Authorize**: a change made for a person (`acting_user`) needs that person's
  permission, decided by the same policy as any decision, on the facts as they are
  inside the transaction (403 `Forbidden` if not granted); without one, it is a
  trusted system change.
- **Refuse** a change that would break an invariant of the data (`BreaksInvariant`,
  named by its code, in the product's words: see `invariants.py`); nothing is written.
- **Write**, then **log** the change last: the change-log entry takes the next revision
  from the counter, whose lock every other writer then waits on until commit.

Every SQL statement is in `models/transactions.py`; this module decides.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from models.changelog import Who, entries
from models.database import Database
from models.errors import Conflict, NotFound
from models.fact_cache import CACHE_DROP_KIND
from models.history import POLICY_KIND
from models.tables import AccountRow, MembershipRow
from models.transactions import Transaction, read_transaction, write_transaction
from policies.engine import Policy
from service.core import invariants
from service.core.documents import SETTINGS, account_document, settings_document
from service.core.errors import BreaksInvariant, Forbidden, Unauthenticated
from service.core.invariants import PAYMENT_MANAGER_PROTECTED


@dataclass(frozen=True)
class Written:
    """What a write answers: the resulting document and the revision it is visible from."""

    document: dict
    revision: int


class Store:
    """The facts as the core changes and shows them, each change authorized and checked."""

    def __init__(
        self, db: Database, policy: Callable[[], Policy], on_commit: Callable[[int], None] = lambda revision: None
    ) -> None:
        self.db = db
        self.policy = policy
        self.on_commit = on_commit  # told every revision this store commits

    @contextmanager
    def _write(self, who: Who) -> Iterator[Transaction]:
        """One write transaction; once it has committed a change, `on_commit` hears its revision.

        Just before the commit, after every lock the change took (the account's row, the revision
        counter, which a revocation takes too), the caller's API key is read again: a key revoked
        while the request was in flight gets nothing committed (401, rolled back).
        """
        with write_transaction(self.db) as tx:
            yield tx
            self._refuse_revoked_key(tx, who)
        if tx.revision is not None:
            self.on_commit(tx.revision)

    @staticmethod
    def _refuse_revoked_key(tx: Transaction, who: Who) -> None:
        """Keys are revoked, never deleted: a key with no row is not a stored key (the preshared key, the
        scenario runner's label), which no one can revoke."""
        if who.api_key is not None and tx.key_revoked(who.api_key):
            raise Unauthenticated("the API key was revoked while this request was in flight; nothing was written")

    # -- accounts -----------------------------------------------------------

    def create_account(self, account_id: str, name: str, admin: str, who: Who) -> Written:
        """Sign-up: the account with default billing settings and its first admin."""
        exists = Conflict(f"account {account_id} already exists", "account_exists")
        with self._write(who) as tx:
            if tx.account(account_id) is not None:
                raise exists
            account = tx.insert_account(account_id, name, restricted=False, auto_add=True)
            if account is None:  # another process created it first
                raise exists
            tx.insert_membership(account_id, admin, "admin")
            document = account_document(account, [{"user": admin, "role": "admin"}])
            after = {"name": name, **document["billing_settings"], "admin": admin}
            revision = tx.log(who, "account.create", account=account_id, user=admin, before={}, after=after)
        return Written(document, revision)

    def account(self, account_id: str, *, acting_user: str | None = None) -> Written:
        with read_transaction(self.db) as tx:
            account = self._account(tx, account_id)
            self._require(tx, acting_user, "read", "Account", {"id": account_id})
            return Written(account_document(account, tx.members(account_id)), tx.current_revision())

    # -- billing settings ---------------------------------------------------

    def billing_settings(self, account_id: str, *, acting_user: str | None = None) -> Written:
        with read_transaction(self.db) as tx:
            account = self._account(tx, account_id)
            self._require(tx, acting_user, "view_subscription", "Account", {"id": account_id})
            return Written(settings_document(account), tx.current_revision())

    def update_billing_settings(self, account_id: str, values: dict[str, bool], who: Who) -> Written:
        """Change one or both settings. Invariant 2: no restriction without a payment manager."""
        with self._write(who) as tx:
            account = self._account(tx, account_id, lock=True)
            self._require(tx, who.acting_user, "manage_billing_settings", "Account", {"id": account_id})
            before = {name: getattr(account, name) for name in SETTINGS}
            after = {name: values.get(name, before[name]) for name in SETTINGS}
            if after == before:
                return Written(settings_document(account), tx.current_revision())
            if after["restrict_subscription_to_payment_manager"]:
                invariants.refuse_restriction_without_payment_manager(tx, account_id)
            tx.set_settings(account, after)
            revision = tx.log(who, "billing_settings.update", account=account_id, before=before, after=after)
            return Written(settings_document(account), revision)

    # -- members ------------------------------------------------------------

    def members(self, account_id: str, *, acting_user: str | None = None) -> Written:
        with read_transaction(self.db) as tx:
            self._account(tx, account_id)
            self._require(tx, acting_user, "view_members", "Account", {"id": account_id})
            return Written({"account": account_id, "members": tx.members(account_id)}, tx.current_revision())

    def invite(self, account_id: str, user: str, role: str, who: Who) -> Written:
        """Add a member. Invariants 4 (one payment manager) and 5 (one role per user and account)."""
        with self._write(who) as tx:
            self._account(tx, account_id, lock=True)
            self._require(tx, who.acting_user, "manage_members", "Account", {"id": account_id})
            invariants.refuse_second_role(tx, account_id, user)
            if role == "payment_manager":
                invariants.refuse_second_payment_manager(tx, account_id)
            tx.insert_membership(account_id, user, role)
            revision = tx.log(
                who, "member.invite", account=account_id, user=user, before={"role": None}, after={"role": role}
            )
            return Written({"account": account_id, "user": user, "role": role}, revision)

    def change_role(self, account_id: str, user: str, role: str, who: Who) -> Written:
        """Give a member another role. Invariants 1, 3 and 4."""
        with self._write(who) as tx:
            account = self._account(tx, account_id, lock=True)
            membership = self._membership(tx, account_id, user)
            self._refuse_to_touch_protected_payment_manager(tx, account, membership, who)
            self._require(tx, who.acting_user, "change_role", "Membership", {"account": account_id, "user": user})
            if membership.role == role:
                return Written({"account": account_id, "user": user, "role": role}, tx.current_revision())
            if membership.role == "admin":
                invariants.refuse_to_lose_last_admin(tx, account_id, user)
            if role == "payment_manager":
                invariants.refuse_second_payment_manager(tx, account_id)
            before = {"role": membership.role}
            tx.set_role(account_id, user, role)
            revision = tx.log(
                who, "member.change_role", account=account_id, user=user, before=before, after={"role": role}
            )
            return Written({"account": account_id, "user": user, "role": role}, revision)

    def remove_member(self, account_id: str, user: str, who: Who) -> Written:
        """Remove a member. Invariants 1 and 3."""
        with self._write(who) as tx:
            account = self._account(tx, account_id, lock=True)
            membership = self._membership(tx, account_id, user)
            self._refuse_to_touch_protected_payment_manager(tx, account, membership, who)
            self._require(tx, who.acting_user, "remove", "Membership", {"account": account_id, "user": user})
            if membership.role == "admin":
                invariants.refuse_to_lose_last_admin(tx, account_id, user)
            before = {"role": membership.role}
            tx.delete_membership(account_id, user)
            revision = tx.log(
                who, "member.remove", account=account_id, user=user, before=before, after={"role": None}
            )
            return Written({"account": account_id, "user": user, "role": None}, revision)

    # -- support agents -----------------------------------------------------

    def add_support_agent(self, user: str, who: Who) -> tuple[Written, bool]:
        """Make `user` a support agent; answers whether anything changed."""
        with self._write(who) as tx:
            tx.lock_counter()
            if tx.is_support_agent(user):
                return Written({"user": user, "support_agent": True}, tx.current_revision()), False
            tx.add_support_agent(user)
            revision = tx.log(
                who, "support_agent.add", user=user, before={"support_agent": False}, after={"support_agent": True}
            )
            return Written({"user": user, "support_agent": True}, revision), True

    def remove_support_agent(self, user: str, who: Who) -> Written:
        with self._write(who) as tx:
            tx.lock_counter()
            if not tx.remove_support_agent(user):
                raise NotFound(f"{user} is not a support agent", "support_agent_not_found")
            revision = tx.log(
                who, "support_agent.remove", user=user, before={"support_agent": True}, after={"support_agent": False}
            )
            return Written({"user": user, "support_agent": False}, revision)

    # -- operations -----------------------------------------------------------

    def drop_cached_facts(self, who: Who) -> int:
        """Make every process forget its cached facts (after a repair made in the database); answers the revision.

        Recorded in the change log like any change, so every process and host follows it.
        """
        with self._write(who) as tx:
            tx.lock_counter()
            return tx.log(who, CACHE_DROP_KIND, before={}, after={"cached_facts": "dropped"})

    # -- the policy ---------------------------------------------------------

    def record_policy(self, policy: Policy, who: Who, *, changes: list[str] | None = None) -> int | None:
        """Record `policy` as the policy in force, unless it already is; answers the new revision or None.

        `changes`: what it changes against the previous one, in words (a policy diff).
        """
        with self._write(who) as tx:
            tx.lock_counter()
            recorded = tx.recorded_policy()
            if recorded is not None and recorded[1] == policy.sha256:
                return None
            return tx.log(
                who, POLICY_KIND,
                before={"sha256": recorded[1] if recorded else None},
                after={
                    "sha256": policy.sha256, "text": policy.text, "source": policy.source_name,
                    **({"changes": changes} if changes is not None else {}),
                },
            )

    # -- the change log -----------------------------------------------------

    def changes(self, *, account: str | None = None, after: int = 0, limit: int) -> tuple[list[dict], int]:
        """Entries after revision `after`, oldest first, at most `limit`; and the latest revision."""
        return entries(self.db, account=account, after=after, limit=limit)

    # -- steps every change shares -------------------------------------------

    def _account(self, tx: Transaction, account_id: str, *, lock: bool = False) -> AccountRow:
        account = tx.account(account_id, lock=lock)
        if account is None:
            raise NotFound(f"account {account_id} does not exist", "account_not_found")
        return account

    def _membership(self, tx: Transaction, account_id: str, user: str) -> MembershipRow:
        membership = tx.membership(account_id, user)
        if membership is None:
            raise NotFound(f"{user} is not a member of account {account_id}", "member_not_found")
        return membership

    def _allowed(self, tx: Transaction, user: str, action: str, resource_type: str, attributes: dict) -> bool:
        policy = self.policy()
        return policy.is_allowed(policy.situation(tx.facts, resource_type, user, attributes), action)

    def _require(
        self, tx: Transaction, acting_user: str | None, action: str, resource_type: str, attributes: dict
    ) -> None:
        """403 unless the policy grants `action` to the acting user; a system change (no acting user) passes."""
        if acting_user is None or self._allowed(tx, acting_user, action, resource_type, attributes):
            return
        raise Forbidden(f"{acting_user} may not {action} this {resource_type}", "forbidden")

    def _refuse_to_touch_protected_payment_manager(
        self, tx: Transaction, account: AccountRow, membership: MembershipRow, who: Who
    ) -> None:
        """Invariant 1, answered with the product's own words.

        It applies to system changes and to whoever manages the members (an
        admin); anyone else is simply not allowed (403) and learns nothing more.
        """
        if not invariants.protects_payment_manager(account, membership):
            return
        if who.acting_user is None or self._allowed(tx, who.acting_user, "manage_members", "Account", {"id": account.id}):
            raise BreaksInvariant(PAYMENT_MANAGER_PROTECTED, "payment_manager_protected")
