"""A small reference model of SPEC.md: the facts, the write rules and the invariants, in plain Python.

It is written independently of policy.polar and of the write path (it only
borrows `tests.reference.expected`, SPEC.md's rules table), so the
model-based test can find a mistake in either.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from policies.situations import Situation
from tests.reference import expected

PAYMENT_MANAGER = "payment_manager"


@dataclass
class ModelAccount:
    restricted: bool = False
    auto_add: bool = True
    members: dict[str, str] = field(default_factory=dict)


@dataclass
class Outcome:
    status: int
    code: str | None = None


OK = Outcome(200)
CREATED = Outcome(201)


class Model:
    def __init__(self) -> None:
        self.accounts: dict[str, ModelAccount] = {}
        self.support: set[str] = set()

    # -- decisions ----------------------------------------------------------

    def situation(self, resource_type: str, actor: str, resource: dict) -> Situation:
        account_id = resource["id"] if resource_type == "Account" else resource["account"]
        account = self.accounts.get(account_id, ModelAccount())
        role = account.members.get(actor)
        other = resource.get("owner") or resource.get("user")
        if other is None:
            return Situation(resource_type, role, actor in self.support, account.restricted, account.auto_add)
        if other == actor:
            return Situation(
                resource_type, role, actor in self.support, account.restricted, account.auto_add,
                True, role, actor in self.support,
            )
        return Situation(
            resource_type, role, actor in self.support, account.restricted, account.auto_add,
            False, account.members.get(other), other in self.support,
        )

    def allowed(self, resource_type: str, actor: str, action: str, resource: dict) -> bool:
        return expected(self.situation(resource_type, actor, resource), action)

    def _may(self, actor: str | None, action: str, resource_type: str, resource: dict) -> bool:
        return actor is None or self.allowed(resource_type, actor, action, resource)

    # -- writes: the outcome the service must answer, applied if it succeeds --

    def create_account(self, account_id: str, admin: str) -> Outcome:
        if account_id in self.accounts:
            return Outcome(409, "account_exists")
        self.accounts[account_id] = ModelAccount(members={admin: "admin"})
        return CREATED

    def invite(self, actor: str | None, account_id: str, user: str, role: str) -> Outcome:
        account = self.accounts.get(account_id)
        if account is None:
            return Outcome(404, "account_not_found")
        if not self._may(actor, "manage_members", "Account", {"id": account_id}):
            return Outcome(403, "forbidden")
        if user in account.members:
            return Outcome(409, "already_member")
        if role == PAYMENT_MANAGER and PAYMENT_MANAGER in account.members.values():
            return Outcome(409, "payment_manager_exists")
        account.members[user] = role
        return CREATED

    def _protected(self, actor: str | None, account_id: str, user: str) -> bool:
        account = self.accounts[account_id]
        return (
            account.members[user] == PAYMENT_MANAGER
            and account.restricted
            and self._may(actor, "manage_members", "Account", {"id": account_id})
        )

    def _refuse_member_change(self, actor: str | None, account_id: str, user: str, action: str) -> Outcome | None:
        """What refuses changing or removing a membership before its new value matters, in the service's order."""
        account = self.accounts.get(account_id)
        if account is None:
            return Outcome(404, "account_not_found")
        if user not in account.members:
            return Outcome(404, "member_not_found")
        if self._protected(actor, account_id, user):
            return Outcome(409, "payment_manager_protected")
        if not self._may(actor, action, "Membership", {"account": account_id, "user": user}):
            return Outcome(403, "forbidden")
        return None

    def _last_admin(self, account: ModelAccount, user: str) -> bool:
        return account.members[user] == "admin" and list(account.members.values()).count("admin") <= 1

    def change_role(self, actor: str | None, account_id: str, user: str, role: str) -> Outcome:
        refused = self._refuse_member_change(actor, account_id, user, "change_role")
        if refused is not None:
            return refused
        account = self.accounts[account_id]
        if account.members[user] == role:
            return OK
        if self._last_admin(account, user):
            return Outcome(409, "last_admin")
        if role == PAYMENT_MANAGER and PAYMENT_MANAGER in account.members.values():
            return Outcome(409, "payment_manager_exists")
        account.members[user] = role
        return OK

    def remove(self, actor: str | None, account_id: str, user: str) -> Outcome:
        refused = self._refuse_member_change(actor, account_id, user, "remove")
        if refused is not None:
            return refused
        account = self.accounts[account_id]
        if self._last_admin(account, user):
            return Outcome(409, "last_admin")
        del account.members[user]
        return OK

    def settings(self, actor: str | None, account_id: str, restricted: bool | None, auto_add: bool | None) -> Outcome:
        account = self.accounts.get(account_id)
        if account is None:
            return Outcome(404, "account_not_found")
        if not self._may(actor, "manage_billing_settings", "Account", {"id": account_id}):
            return Outcome(403, "forbidden")
        new_restricted = account.restricted if restricted is None else restricted
        new_auto_add = account.auto_add if auto_add is None else auto_add
        if (new_restricted, new_auto_add) == (account.restricted, account.auto_add):
            return OK
        if new_restricted and PAYMENT_MANAGER not in account.members.values():
            return Outcome(409, "no_payment_manager")
        account.restricted, account.auto_add = new_restricted, new_auto_add
        return OK

    def add_support(self, user: str) -> Outcome:
        self.support.add(user)
        return OK

    def remove_support(self, user: str) -> Outcome:
        if user not in self.support:
            return Outcome(404, "support_agent_not_found")
        self.support.discard(user)
        return OK

    # -- invariants ---------------------------------------------------------

    def check_invariants(self) -> None:
        for account_id, account in self.accounts.items():
            roles = list(account.members.values())
            assert roles.count("admin") >= 1, f"{account_id} has no admin"
            assert roles.count(PAYMENT_MANAGER) <= 1, f"{account_id} has two payment managers"
            assert not account.restricted or PAYMENT_MANAGER in roles, f"{account_id} restricted without a PM"
