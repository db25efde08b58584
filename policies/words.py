"""Situations in business words: who, on which account settings, on whose card or membership, which ids.

Shared by the proofs of properties (a counterexample), policy diffs (what
changes, grouped) and the matrix's exceptions by id.
"""

from __future__ import annotations

from collections.abc import Iterable

from policies.ids import SLOT_WORDS
from policies.situations import IdPattern, Situation

PLURAL = {
    "admin": "admins",
    "collaborator": "collaborators",
    "reader": "readers",
    "payment_manager": "payment managers",
    None: "non-members",
}
SETTINGS = [(restricted, auto_add) for restricted in (False, True) for auto_add in (True, False)]


def role_words(role: str | None) -> str:
    return "someone who is not a member" if role is None else f"{'an' if role == 'admin' else 'a'} {role.replace('_', ' ')}"


def restricted_words(restricted: bool) -> str:
    return f"{'restricts' if restricted else 'does not restrict'} subscription management to its payment manager"


def auto_add_words(auto_add: bool) -> str:
    return f"{'adds' if auto_add else 'keeps'} subscription invoices {'to' if auto_add else 'out of'} its purchases"


def settings_words(restricted: bool, auto_add: bool) -> str:
    return f"an account that {restricted_words(restricted)} and {auto_add_words(auto_add)}"


def settings_set_words(combinations: Iterable[tuple[bool, bool]]) -> str:
    """The simplest phrase for a set of (restricted, auto_add) combinations."""
    found = set(combinations)
    if len(found) == 4:
        return "whatever the billing settings"
    restricted_values = {r for r, _ in found}
    auto_add_values = {a for _, a in found}
    if len(found) == 2 and len(restricted_values) == 1:
        return f"while the account {restricted_words(next(iter(restricted_values)))}"
    if len(found) == 2 and len(auto_add_values) == 1:
        return f"while the account {auto_add_words(next(iter(auto_add_values)))}"
    return " or ".join(
        f"while the account {restricted_words(r)} and {auto_add_words(a)}" for r, a in sorted(found, reverse=True)
    )


def who_words(role: str | None, support: Iterable[bool]) -> str:
    """A group of actors: `readers`, `admins who are also support agents`, `support agents who are not members`."""
    support = set(support)
    if support == {False, True}:
        return PLURAL[role]
    if support == {True}:
        return "support agents who are not members" if role is None else f"{PLURAL[role]} who are also support agents"
    return f"{PLURAL[role]} who are not support agents"


def actor_words(situation: Situation) -> str:
    """One actor: `a reader (not a support agent)`."""
    support = "a support agent" if situation.actor_is_support_agent else "not a support agent"
    return f"{role_words(situation.actor_role)} ({support})"


def other_user_words(situation: Situation) -> str:
    """Whose payment method or membership it is: `their own`, `someone else's (a reader, not a support agent)`."""
    if situation.resource_type not in ("PaymentMethod", "Membership"):
        return ""
    thing = "payment method" if situation.resource_type == "PaymentMethod" else "membership"
    if situation.other_user_is_actor:
        return f"their own {thing}"
    support = "a support agent" if situation.other_user_is_support_agent else "not a support agent"
    return f"the {thing} of {role_words(situation.other_user_role)} ({support})"


def ids_words(ids: IdPattern) -> str:
    """`when the user is u_fired and the account is acc_demo`; empty for ids the policy does not name."""
    if not ids:
        return ""
    return "when " + " and ".join(f"{SLOT_WORDS.get(slot, slot)} is {literal}" for slot, literal in ids)


TARGETS = {
    "Account": "the account",
    "Subscription": "its subscription",
    "SubscriptionInvoice": "its subscription invoices",
    "Document": "its documents",
}


def target_words(situation: Situation) -> str:
    """What an action is done on: `its subscription invoices`, `the payment method of a reader (...)`."""
    return TARGETS.get(situation.resource_type) or other_user_words(situation)


def decision_words(situation: Situation, action: str, allowed: bool) -> str:
    """A whole decision, as a counterexample reads it: who, on which account, may (not) do what on what."""
    subject = f"{actor_words(situation)} of {settings_words(situation.restricted, situation.auto_add)}"
    if situation.ids:
        subject += f", {ids_words(situation.ids)},"
    return f"{subject} may {'' if allowed else 'not '}{action} {target_words(situation)}"
