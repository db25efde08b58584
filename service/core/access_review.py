"""The access review (SOC 2 / ISO 27001 user-access review): who holds what on an account, or a user everywhere.

Nothing is decided here: each person's actions are the policy's compiled answers
(`Policy.allowed_actions`) for the situation the stored facts put them in. A payment
method or a membership also depends on a second person (its owner, its member), so
for those the policy's answers for every such person are compared, and each action
comes with the condition that sums them up in words ("own payment methods only",
"memberships whose role is admin, collaborator or reader", "any payment method").
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

from models.access import account_access, user_access
from models.database import Database
from models.errors import NotFound
from policies.engine import Policy
from policies.ids import ACCOUNT_SLOT, ACTOR
from policies.situations import Situation, id_pattern
from policies.world import RESOURCE_TYPES, ROLES
from service.core.decision_log import csv_cell

# What a record of each type with a second person is called, in the conditions' words.
_NOUNS = {
    "PaymentMethod": ("payment method", "payment methods", "own payment methods", "owner"),
    "Membership": ("membership", "memberships", "their own membership", "role"),
}
_SETTINGS = ((False, False), (False, True), (True, False), (True, True))


def review_account(db: Database, policy: Policy, account_id: str) -> dict[str, Any]:
    """Everyone who holds anything on the account (members, support agents), and what; `NotFound` if none."""
    facts = account_access(db, account_id)
    if facts is None:
        raise NotFound(f"account {account_id} does not exist", "account_not_found")
    support = set(facts.support_agents)
    roles = dict(facts.members)
    subjects = []
    for user in sorted({*roles, *support}):
        actions = holdings(
            policy, user, account_id, roles.get(user), user in support, facts.restricted, facts.auto_add
        )
        if actions:
            subjects.append({"user": user, "role": roles.get(user), "support_agent": user in support, "actions": actions})
    return {"account": account_id, "revision": facts.revision, "policy": policy.sha256, "subjects": subjects}


def review_user(db: Database, policy: Policy, user_id: str) -> dict[str, Any]:
    """Every account the user is a member of, with the role and what it grants.

    A support agent also gets `on_every_account`: what they hold on any account, whatever its
    settings, without being a member of it.
    """
    facts = user_access(db, user_id)
    accounts = []
    for account_id, role, restricted, auto_add in facts.memberships:
        actions = holdings(policy, user_id, account_id, role, facts.support_agent, restricted, auto_add)
        accounts.append({"account": account_id, "role": role, "actions": actions})
    answer: dict[str, Any] = {
        "user": user_id, "revision": facts.revision, "policy": policy.sha256, "support_agent": facts.support_agent,
        "accounts": accounts,
    }
    if facts.support_agent:
        answer["on_every_account"] = _held_whatever_the_settings(policy, user_id)
    return answer


def holdings(
    policy: Policy, user: str, account_id: str, role: str | None, support: bool, restricted: bool, auto_add: bool
) -> dict[str, list]:
    """What the policy grants `user` on the account, by resource type; types granting nothing are left out.

    Simple types answer sorted action names; PaymentMethod and Membership answer
    `{"action", "condition"}` for each action granted to some owner or member.
    """
    ids = id_pattern(
        {slot: policy.id_literals[slot] for slot in (ACTOR, ACCOUNT_SLOT) if slot in policy.id_literals},
        {ACTOR: user, ACCOUNT_SLOT: account_id},
    )
    held: dict[str, list] = {}
    for resource_type, kind in RESOURCE_TYPES.items():
        base = dict(
            resource_type=resource_type, actor_role=role, actor_is_support_agent=support, restricted=restricted,
            auto_add=auto_add, ids=ids,
        )
        if kind.other_user is None:
            granted = sorted(policy.allowed_actions(Situation(**base)))
            if granted:
                held[resource_type] = granted
            continue
        conditional = _conditional(policy, base, resource_type)
        if conditional:
            held[resource_type] = conditional
    return held


def _conditional(policy: Policy, base: dict, resource_type: str) -> list[dict[str, str]]:
    """For a type with a second person: each action granted for some of them, and for which, in words."""
    own = policy.allowed_actions(
        Situation(**base, other_user_is_actor=True, other_user_role=base["actor_role"],
                  other_user_is_support_agent=base["actor_is_support_agent"])
    )
    # A membership that does not exist grants nothing: its "others" are members holding a role.
    other_roles = ROLES if resource_type == "Membership" else (None, *ROLES)
    others = {
        (other_role, other_support): policy.allowed_actions(
            Situation(**base, other_user_role=other_role, other_user_is_support_agent=other_support)
        )
        for other_role in other_roles
        for other_support in (False, True)
    }
    actions = sorted(own.union(*others.values()))
    return [
        {"action": action, "condition": _condition(
            resource_type, action in own, {case for case, granted in others.items() if action in granted}, set(others)
        )}
        for action in actions
    ]


def _condition(resource_type: str, own: bool, granted: set, every: set) -> str:
    singular, plural, own_words, whose = _NOUNS[resource_type]
    if granted == every:
        return f"any {singular}" if own else f"any {singular} but their own"
    if not granted:
        return f"{own_words} only"
    described = f"{plural} whose {whose} {_who(granted, every)}"
    return f"{own_words}, and {described}" if own else described


def _who(granted: set, every: set) -> str:
    """In words, the owners or members of `granted` among `every` (pairs of a role and support-agent status)."""
    roles = sorted({role for role, _support in granted}, key=lambda role: (role is not None, role or ""))
    by_role_only = granted == {case for case in every if case[0] in roles}
    if by_role_only:
        return _roles_words(roles)
    supports = {support for _role, support in granted}
    if supports == {True} and {case for case in every if case[1]} == granted:
        return "is a support agent"
    return "; or ".join(
        f"{_roles_words([role])}{' and a support agent' if support else ', not a support agent'}"
        for role, support in sorted(granted, key=lambda case: (case[0] or "", case[1]))
    )


def _roles_words(roles: Iterable[str | None]) -> str:
    named = [role for role in roles if role is not None]
    parts = []
    if named:
        parts.append("is " + (", ".join(named[:-1]) + " or " + named[-1] if len(named) > 1 else named[0]))
    if None in roles:
        parts.append("is not a member")
    return " or ".join(parts)


def _held_whatever_the_settings(policy: Policy, user: str) -> dict[str, list]:
    """What a support agent who is not a member holds on every account, whatever its billing settings."""
    found = [holdings(policy, user, "", None, True, restricted, auto_add) for restricted, auto_add in _SETTINGS]
    common: dict[str, list] = {}
    for resource_type, entries in found[0].items():
        if all(entry in other.get(resource_type, []) for other in found[1:] for entry in entries):
            common[resource_type] = entries
        else:
            kept = [entry for entry in entries if all(entry in other.get(resource_type, []) for other in found[1:])]
            if kept:
                common[resource_type] = kept
    return common


# -- CSV ---------------------------------------------------------------------------


def account_csv(review: dict[str, Any]) -> str:
    """One row per (person, resource type, action): account, user, role, support_agent, type, action, condition."""
    rows = [
        (review["account"], subject["user"], subject["role"] or "", _flag(subject["support_agent"]), *entry)
        for subject in review["subjects"]
        for entry in _entries(subject["actions"])
    ]
    return _csv(("account", "user", "role", "support_agent", "resource_type", "action", "condition"), rows)


def user_csv(review: dict[str, Any]) -> str:
    """One row per (account, resource type, action): user, account, role, type, action, condition.

    A support agent's `on_every_account` rows have account `*` and no role.
    """
    rows = [
        (review["user"], account["account"], account["role"], *entry)
        for account in review["accounts"]
        for entry in _entries(account["actions"])
    ]
    rows += [(review["user"], "*", "", *entry) for entry in _entries(review.get("on_every_account", {}))]
    return _csv(("user", "account", "role", "resource_type", "action", "condition"), rows)


def _entries(actions: dict[str, list]) -> Iterable[tuple[str, str, str]]:
    for resource_type, entries in actions.items():
        for entry in entries:
            if isinstance(entry, dict):
                yield resource_type, entry["action"], entry["condition"]
            else:
                yield resource_type, entry, ""


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _csv(header: tuple[str, ...], rows: list[tuple]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows([csv_cell(value) for value in row] for row in rows)
    return out.getvalue()
