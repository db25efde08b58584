"""Explanations of one decision, in business words, derived from evaluating the policy.

Three things are asked to the policy itself, never re-decided here:
- which of the rules that could grant the action hold in this situation
  (each rule's condition is queried with oso on the decision's world);
- which roles, derived ones included, the actor holds on the account;
- what single change of the facts would turn the decision around (the
  decision table of every situation answers that).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from policies.ids import SLOT_WORDS
from policies.reader import Rule
from policies.situations import Names, Situation, build_world
from policies.world import ROLES

if TYPE_CHECKING:
    from policies.engine import Policy

DERIVED_ROLES = ("subscription_manager",)


def explain(
    policy: Policy, situation: Situation, names: Names, action: str, *, missing_account: str | None = None
) -> dict[str, Any]:
    """Why `action` is allowed or denied in `situation`, naming the people and accounts of `names`.

    `missing_account`: the sentence saying the account does not exist (now, or as of a
    revision). Nothing is then said of its settings or members, which it does not have,
    and no alternative is offered that changes them.
    """
    allowed = policy.is_allowed(situation, action)
    rules = [_rule_outcome(policy, rule, situation, names, action) for rule in _candidate_rules(policy, situation, action)]
    facts = _facts(situation, names) + _derived_roles(policy, situation, names)
    turning = _turning_points(policy, situation, names, action, allowed)
    if missing_account is not None:
        facts = [missing_account] + [fact for fact in facts[1:] if not fact.startswith(names.account + " ")]
        facts = [fact for fact in facts if f" of {names.account}" not in fact]
        turning = [(text, field) for text, field in turning if field not in _ACCOUNT_FIELDS]
    resource = _label(situation, names)
    if allowed:
        reasons = [text for text, _ in turning] or [facts[1] if missing_account is not None else facts[0]]
        granting = next((r for r in rules if r["holds"]), None)
        summary = f"{names.actor} may {action} {resource} because " + " and ".join(_dedupe(reasons))
        if granting is not None:
            summary += f". Rule (policy.polar line {granting['line']}): {granting['says']}"
    else:
        blocking = [text for text, field in turning if field != "actor_role"]
        summary = f"{names.actor} may not {action} {resource}: {facts[0]}"
        if blocking:
            summary += ", but " + " and ".join(_dedupe(blocking))
        else:
            summary += "; no rule of the policy grants it"
    return {
        "summary": summary,
        "facts": facts,
        "rules": rules,
        "would_be_allowed_if": [] if allowed else _alternatives(policy, situation, names, action, True, missing_account),
        "would_be_denied_if": _alternatives(policy, situation, names, action, False, missing_account) if allowed else [],
    }


# What an account that does not exist has none of: its settings and its members' roles.
_ACCOUNT_FIELDS = ("actor_role", "restricted", "auto_add", "other_user_role")


def _candidate_rules(policy: Policy, situation: Situation, action: str) -> list[Rule]:
    return [
        rule
        for rule in policy.rules
        if rule.resource_type == situation.resource_type and rule.may_grant(action)
    ]


def _rule_outcome(policy: Policy, rule: Rule, situation: Situation, names: Names, action: str) -> dict[str, Any]:
    actor, resource = build_world(situation, names)
    if rule.permission is not None:
        if rule.relation is None:
            holds = policy.oso.query_rule_once("has_role", actor, rule.role, resource)
        else:
            holds = _query(
                policy,
                f'has_relation(related, "{rule.relation}", resource) and has_role(actor, "{rule.role}", related)',
                {"actor": actor, "resource": resource},
            )
    else:
        bindings: dict[str, Any] = {}
        actor_param, action_param, resource_param = rule.params
        if actor_param.name:
            bindings[actor_param.name] = actor
        if action_param.name:
            bindings[action_param.name] = action
        if resource_param.name:
            bindings[resource_param.name] = resource
        body = rule.body or "true"
        holds = _query(policy, body, {name: value for name, value in bindings.items() if name in body})
    return {"line": rule.line, "rule": rule.text, "says": rule.comment, "holds": holds}


def _query(policy: Policy, query: str, bindings: dict[str, Any]) -> bool:
    for _ in policy.oso.query(query, bindings=bindings):
        return True
    return False


def _derived_roles(policy: Policy, situation: Situation, names: Names) -> list[str]:
    held = [role for role in DERIVED_ROLES if policy.has_role(situation, names, role)]
    return [f"{names.actor} is a {role.replace('_', ' ')} of {names.account}" for role in held]


def _facts(situation: Situation, names: Names) -> list[str]:
    """The situation's facts, actor's role first."""
    account = names.account
    facts = [_role_sentence(names.actor, situation.actor_role, account)]
    facts.append(f"{names.actor} is {'' if situation.actor_is_support_agent else 'not '}a support agent")
    facts.append(_restricted_sentence(account, situation.restricted))
    facts.append(_auto_add_sentence(account, situation.auto_add))
    if situation.resource_type == "PaymentMethod":
        facts.append(f"payment method {names.resource} belongs to {_other(situation, names)}")
    if situation.resource_type in ("PaymentMethod", "Membership") and not situation.other_user_is_actor:
        facts.append(_role_sentence(names.other_user, situation.other_user_role, account))
        if situation.other_user_is_support_agent:
            facts.append(f"{names.other_user} is a support agent")
    facts += [_named_sentence(slot, literal) for slot, literal in situation.ids]
    return facts


def _named_sentence(slot: str, literal: str) -> str:
    """A decision whose ids the policy names by literal (`user.id = "u_fired"`)."""
    return f"policy.polar names {literal} ({SLOT_WORDS.get(slot, slot)})"


def _role_sentence(user: str, role: str | None, account: str) -> str:
    return f"{user} is {role} of {account}" if role else f"{user} is not a member of {account}"


def _restricted_sentence(account: str, restricted: bool) -> str:
    does = "restricts" if restricted else "does not restrict"
    return f"{account} {does} subscription management to its payment manager"


def _auto_add_sentence(account: str, auto_add: bool) -> str:
    does = "adds" if auto_add else "does not add"
    return f"{account} {does} subscription invoices to its purchases"


def _other(situation: Situation, names: Names) -> str:
    return names.actor if situation.other_user_is_actor else names.other_user


def _label(situation: Situation, names: Names) -> str:
    if situation.resource_type == "Account":
        return f"account {names.account}"
    if situation.resource_type == "Membership":
        return f"the membership of {_other(situation, names)} in {names.account}"
    return f"{situation.resource_type} {names.resource}"


@dataclasses.dataclass(frozen=True)
class _Change:
    field: str
    situation: Situation
    text: str


def _changes(situation: Situation, names: Names) -> list[_Change]:
    """Every situation one fact away from this one, with the fact it changes."""
    account = names.account
    found: list[_Change] = []

    def add(field: str, text: str, **values: Any) -> None:
        changed = dataclasses.replace(situation, **values)
        if changed.other_user_is_actor:
            changed = dataclasses.replace(
                changed, other_user_role=changed.actor_role, other_user_is_support_agent=changed.actor_is_support_agent
            )
        found.append(_Change(field, changed, text))

    for role in (None, *ROLES):
        if role != situation.actor_role:
            text = f"{names.actor} were {role} of {account}" if role else f"{names.actor} were not a member of {account}"
            add("actor_role", text, actor_role=role)
    add(
        "actor_is_support_agent",
        f"{names.actor} were {'not ' if situation.actor_is_support_agent else ''}a support agent",
        actor_is_support_agent=not situation.actor_is_support_agent,
    )
    add("restricted", _restricted_sentence(account, not situation.restricted), restricted=not situation.restricted)
    add("auto_add", _auto_add_sentence(account, not situation.auto_add), auto_add=not situation.auto_add)
    if situation.resource_type in ("PaymentMethod", "Membership") and not situation.other_user_is_actor:
        for role in (None, *ROLES):
            if role != situation.other_user_role:
                other = names.other_user
                text = f"{other} were {role} of {account}" if role else f"{other} were not a member of {account}"
                add("other_user_role", text, other_user_role=role)
    for slot, literal in situation.ids:
        others = tuple(pair for pair in situation.ids if pair[0] != slot)
        add(f"ids:{slot}", f"{SLOT_WORDS.get(slot, slot)} were not {literal}", ids=others)
    if situation.resource_type == "PaymentMethod":
        if situation.other_user_is_actor:
            add("other_user_is_actor", f"payment method {names.resource} belonged to someone else", other_user_is_actor=False)
        else:
            add("other_user_is_actor", f"payment method {names.resource} belonged to {names.actor}", other_user_is_actor=True)
    return found


def _alternatives(
    policy: Policy, situation: Situation, names: Names, action: str, wanted: bool, missing_account: str | None = None
) -> list[str]:
    return [
        change.text
        for change in _changes(situation, names)
        if policy.is_allowed(change.situation, action) == wanted
        and (missing_account is None or change.field not in _ACCOUNT_FIELDS)
    ]


def _turning_points(
    policy: Policy, situation: Situation, names: Names, action: str, allowed: bool
) -> list[tuple[str, str]]:
    """The current facts whose change alone would turn the decision around, as (sentence, field)."""
    current = {
        "actor_role": _role_sentence(names.actor, situation.actor_role, names.account),
        "actor_is_support_agent": f"{names.actor} is {'' if situation.actor_is_support_agent else 'not '}a support agent",
        "restricted": _restricted_sentence(names.account, situation.restricted),
        "auto_add": _auto_add_sentence(names.account, situation.auto_add),
        "other_user_role": _role_sentence(names.other_user, situation.other_user_role, names.account),
        "other_user_is_actor": f"payment method {names.resource} belongs to {_other(situation, names)}",
        **{f"ids:{slot}": _named_sentence(slot, literal) for slot, literal in situation.ids},
    }
    return [
        (current[change.field], change.field)
        for change in _changes(situation, names)
        if policy.is_allowed(change.situation, action) != allowed
    ]


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
