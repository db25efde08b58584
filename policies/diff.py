"""Every decision that changes between two policies, grouped in business words: `authz policy diff`.

Both policies are compiled, so the comparison is exhaustive: every situation
a decision can be in, under every pattern of ids either policy names (and
every combination of the two), is decided by both. The differences are then
grouped so that a reviewer reads one sentence per change of meaning, e.g.
"readers lose view_workspace on Account, whatever the billing settings".
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Any

from policies.engine import Policy
from policies.situations import IdPattern, Situation, id_slots
from policies.words import PLURAL, ids_words, role_words, settings_set_words
from policies.world import ROLES

_ROLE_ORDER = [*ROLES, None]


@dataclass(frozen=True)
class Change:
    """One sentence of a diff, and the facts behind it (for `--json`)."""

    text: str
    resource_type: str
    action: str
    gained: bool
    who: tuple[tuple[str | None, tuple[bool, ...]], ...]  # (role, support agent values)
    other_user: str  # "" or whose payment method / membership
    settings: tuple[tuple[bool, bool], ...]  # (restricted, invoices in purchases)
    ids: IdPattern

    def document(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "resource_type": self.resource_type,
            "action": self.action,
            "change": "gained" if self.gained else "lost",
            "who": [{"role": role, "support_agent": list(support)} for role, support in self.who],
            "other_user": self.other_user or None,
            "settings": [
                {"restrict_subscription_to_payment_manager": r, "auto_add_subscription_invoices_to_purchases": a}
                for r, a in self.settings
            ],
            "ids": dict(self.ids),
        }


def compare(old: Policy, new: Policy) -> list[tuple[Situation, str, bool]]:
    """(situation, action, gained) for every decision the two policies answer differently."""
    differences = []
    old_patterns, new_patterns = _patterns(old), _patterns(new)
    for base in sorted(old_patterns.keys() | new_patterns.keys(), key=repr):
        for ids in _combinations(base, old_patterns.get(base, {()}), new_patterns.get(base, {()})):
            situation = replace(base, ids=ids)
            before, after = old.allowed_actions(situation), new.allowed_actions(situation)
            differences += [(situation, action, True) for action in sorted(after - before)]
            differences += [(situation, action, False) for action in sorted(before - after)]
    return differences


def diff(old: Policy, new: Policy) -> list[Change]:
    """The differences between two policies, as grouped sentences (empty: no decision changes)."""
    return group(compare(old, new))


def _patterns(policy: Policy) -> dict[Situation, set[IdPattern]]:
    found: dict[Situation, set[IdPattern]] = defaultdict(set)
    for situation in list(policy.table):
        found[replace(situation, ids=())].add(situation.ids)
    return found


def _combinations(base: Situation, left: set[IdPattern], right: set[IdPattern]) -> set[IdPattern]:
    """Each pattern of either policy, and each consistent union of one of each (see compiler.py)."""
    found = set()
    users = {"actor", "other_user"}
    for one in left:
        for other in right:
            merged = dict(one)
            if any(merged.get(slot, literal) != literal for slot, literal in other):
                continue
            merged.update(other)
            named_users = [merged[slot] for slot in users if slot in merged]
            if len(named_users) != len(set(named_users)) or not set(merged) <= set(id_slots(base)):
                continue
            found.add(tuple(sorted(merged.items())))
    return found


def group(differences: list[tuple[Situation, str, bool]]) -> list[Change]:
    """Merge differences into sentences: over the other user's support flag, the actor's, then roles."""
    # 1. per (what, whose, ids, role): the (support, restricted, auto_add, other user's support) it happens in
    cells: dict[tuple, set[tuple]] = defaultdict(set)
    for situation, action, gained in differences:
        whose = (situation.other_user_is_actor, situation.other_user_role) if _has_other(situation) else None
        key = (situation.resource_type, action, gained, situation.ids, whose, situation.actor_role)
        cells[key].add(
            (situation.actor_is_support_agent, situation.restricted, situation.auto_add, situation.other_user_is_support_agent)
        )
    # 2. a sentence per (what, whose, ids, settings, supports): roles with the same cells share it
    sentences: dict[tuple, list] = defaultdict(list)
    for (resource_type, action, gained, ids, whose, role), found in cells.items():
        for other_support, rest in _split_other_support(found, whose):
            for supports, settings in _split_support(rest):
                key = (resource_type, action, gained, ids, whose, other_support, settings, supports)
                sentences[key].append(role)
    # 3. the same change on every other user's card or membership reads "someone else's", or "any" with one's own
    merged: dict[tuple, list] = defaultdict(list)
    for (resource_type, action, gained, ids, whose, other_support, settings, supports), roles in sentences.items():
        merged[resource_type, action, gained, ids, settings, supports, tuple(roles)].append((whose, other_support))
    changes = []
    for (resource_type, action, gained, ids, settings, supports, roles), cases in merged.items():
        for other in _whose_groups(resource_type, cases):
            changes.append(_change(resource_type, action, gained, ids, other, settings, supports, list(roles)))
    return sorted(changes, key=lambda c: (c.ids, c.resource_type, c.action, not c.gained, c.text))


def _whose_groups(resource_type: str, cases: list[tuple]) -> list[str]:
    if cases == [(None, ())]:
        return [""]
    others = {whose[1] for whose, support in cases if not whose[0] and support == ()}
    own = any(whose[0] for whose, _support in cases)
    if others == set(_ROLE_ORDER):
        rest = [_whose_words(resource_type, whose, support) for whose, support in cases if whose[0] is False and support]
        return [f"any {resource_type}" if own else f"someone else's {resource_type}", *rest]
    return [_whose_words(resource_type, whose, support) for whose, support in sorted(cases, key=repr)]


def _change(resource_type, action, gained, ids, other, settings, supports, roles) -> Change:
    roles = sorted(roles, key=_ROLE_ORDER.index)
    who = _join([_who(role, supports) for role in roles])
    text = f"{who} {'gain' if gained else 'lose'} {action} on {other or resource_type}, {settings_set_words(settings)}"
    if ids:
        text += f", {ids_words(ids)}"
    return Change(
        text, resource_type, action, gained, tuple((role, tuple(sorted(supports))) for role in roles),
        other, tuple(sorted(settings)), ids,
    )


def _has_other(situation: Situation) -> bool:
    return situation.resource_type in ("PaymentMethod", "Membership")


def _split_other_support(found: set[tuple], whose) -> list[tuple[tuple[bool, ...], set[tuple]]]:
    """Drop the other user's support flag when the change happens whatever it is."""
    if whose is None or whose[0]:
        return [((), {cell[:3] for cell in found})]
    by_rest: dict[tuple, set[bool]] = defaultdict(set)
    for support, restricted, auto_add, other_support in found:
        by_rest[support, restricted, auto_add].add(other_support)
    groups: dict[tuple[bool, ...], set[tuple]] = defaultdict(set)
    for rest, values in by_rest.items():
        groups[() if values == {False, True} else tuple(sorted(values))].add(rest)
    return sorted(groups.items())


def _split_support(found: set[tuple]) -> list[tuple[frozenset[bool], frozenset[tuple[bool, bool]]]]:
    """Merge the actor's support flag when the change happens on the same settings either way."""
    by_support: dict[bool, set[tuple[bool, bool]]] = defaultdict(set)
    for support, restricted, auto_add in found:
        by_support[support].add((restricted, auto_add))
    if len(by_support) == 2 and by_support[False] == by_support[True]:
        return [(frozenset({False, True}), frozenset(by_support[False]))]
    return [(frozenset({support}), frozenset(settings)) for support, settings in sorted(by_support.items())]


def _who(role: str | None, supports: frozenset[bool]) -> str:
    if supports == {False, True}:
        return PLURAL[role]
    if supports == {True}:
        return "support agents who are not members" if role is None else f"{PLURAL[role]} who are also support agents"
    return f"{PLURAL[role]} who are not support agents"


def _whose_words(resource_type: str, whose, other_support: tuple[bool, ...]) -> str:
    if whose is None:
        return ""
    is_actor, role = whose
    if is_actor:
        return f"their own {resource_type}"
    support = ""
    if other_support:
        support = " who is a support agent" if other_support == (True,) else " who is not a support agent"
    return f"the {resource_type} of {role_words(role)}{support}"


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def report(changes: list[Change]) -> str:
    if not changes:
        return "no decision changes"
    return "\n".join(f"- {change.text}" for change in changes) + f"\n\n{len(changes)} changes"
