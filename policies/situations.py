"""Situations: every combination of facts a decision can depend on.

A decision about `(actor, action, resource)` reads only a handful of facts:
the actor's role on the resource's account, whether the actor is a support
agent, the account's two billing settings and, for a payment method or a
membership, the same facts about the other user involved (its owner, its
member). Those facts form a `Situation`; there are 1,040 of them. The policy
is evaluated once per situation (see `compiler.py`) and a decision is a lookup;
the policy stays the only place where rules live.

A policy may also compare ids with literals (`user.id = "u_fired"`). Then a
situation also says which of those literals each id equals (`ids`), and the
compiler has evaluated the policy for every such pattern it can meet.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from policies.ids import (
    ACCOUNT,
    ACCOUNT_SLOT,
    ACTOR,
    OTHER_USER,
    RESOURCE,
    RESOURCE_SLOT,
    ROLE,
    USER,
    Observer,
    SymbolicId,
    elsewhere_slot,
)
from policies.world import (
    RESOURCE_TYPES,
    ROLES,
    Account,
    Document,
    Membership,
    Memberships,
    PaymentMethod,
    RoleOnAccount,
    Subscription,
    SubscriptionInvoice,
    User,
    account_of,
)

DEFAULT_RESTRICTED = False
DEFAULT_AUTO_ADD = True
IdPattern = tuple[tuple[str, str], ...]  # sorted (slot, literal) pairs: which literal each id equals
NO_LITERALS: Mapping[str, frozenset[str]] = {}


@dataclass(frozen=True)
class Situation:
    """The facts one decision depends on. `None` as a role means "not a member"."""

    resource_type: str
    actor_role: str | None
    actor_is_support_agent: bool
    restricted: bool
    auto_add: bool
    # The other user the rules read: a payment method's owner, a membership's user.
    other_user_is_actor: bool = False
    other_user_role: str | None = None
    other_user_is_support_agent: bool = False
    # Which of the policy's id literals the ids equal (empty for a policy that compares ids with none).
    ids: IdPattern = ()


@dataclass(frozen=True)
class Names:
    """The ids of the people and records of one decision (for explanations)."""

    actor: str
    account: str
    resource: str
    other_user: str = ""


class FactSource(Protocol):
    """Where the stored facts come from: the database, or a cache of it."""

    def account_settings(self, account_id: str) -> tuple[bool, bool] | None: ...

    def role(self, user_id: str, account_id: str) -> str | None: ...

    def is_support_agent(self, user_id: str) -> bool: ...


def all_situations(resource_type: str) -> Iterator[Situation]:
    """Every situation a decision about this resource type can be in (ids equal to no literal)."""
    has_other_user = RESOURCE_TYPES[resource_type].other_user is not None
    role_choices = (None, *ROLES)
    for actor_role, actor_support, restricted, auto_add in itertools.product(
        role_choices, (False, True), (False, True), (False, True)
    ):
        base = dict(
            resource_type=resource_type,
            actor_role=actor_role,
            actor_is_support_agent=actor_support,
            restricted=restricted,
            auto_add=auto_add,
        )
        if not has_other_user:
            yield Situation(**base)
            continue
        yield Situation(
            **base,
            other_user_is_actor=True,
            other_user_role=actor_role,
            other_user_is_support_agent=actor_support,
        )
        for other_role, other_support in itertools.product(role_choices, (False, True)):
            yield Situation(**base, other_user_role=other_role, other_user_is_support_agent=other_support)


def id_slots(situation: Situation) -> tuple[str, ...]:
    """The slots whose ids a decision in this situation shows the policy."""
    slots = [ACTOR, ACCOUNT_SLOT]
    if situation.resource_type not in ("Account", "Membership"):
        slots.append(RESOURCE_SLOT)
    if RESOURCE_TYPES[situation.resource_type].other_user is not None and not situation.other_user_is_actor:
        slots.append(OTHER_USER)
    return tuple(slots)


def id_pattern(literals: Mapping[str, frozenset[str]], ids: Mapping[str, str]) -> IdPattern:
    """Which literal of the policy each id equals, among those the policy compares that slot with."""
    return tuple((slot, ids[slot]) for slot in sorted(literals) if slot in ids and ids[slot] in literals[slot])


def situation_of(
    facts: FactSource,
    resource_type: str,
    actor_id: str,
    attributes: dict[str, str],
    literals: Mapping[str, frozenset[str]] = NO_LITERALS,
) -> Situation:
    """Read from `facts` the situation of a decision about the resource named by `attributes`.

    `literals` are the literals the policy compares each id slot with (its `id_literals`).
    """
    account_id = account_of(resource_type, attributes)
    settings = facts.account_settings(account_id)
    restricted, auto_add = settings if settings is not None else (DEFAULT_RESTRICTED, DEFAULT_AUTO_ADD)
    actor_role = facts.role(actor_id, account_id) if settings is not None else None
    actor_support = facts.is_support_agent(actor_id)
    other_attribute = RESOURCE_TYPES[resource_type].other_user
    ids: IdPattern = ()
    if literals:
        named = {ACTOR: actor_id, ACCOUNT_SLOT: account_id}
        if "id" in attributes and resource_type != "Account":
            named[RESOURCE_SLOT] = attributes["id"]
        if other_attribute is not None and attributes[other_attribute] != actor_id:
            named[OTHER_USER] = attributes[other_attribute]
        ids = id_pattern(literals, named)
    if other_attribute is None:
        return Situation(resource_type, actor_role, actor_support, restricted, auto_add, ids=ids)
    other_user_id = attributes[other_attribute]
    if other_user_id == actor_id:
        return Situation(
            resource_type, actor_role, actor_support, restricted, auto_add, True, actor_role, actor_support, ids
        )
    other_role = facts.role(other_user_id, account_id) if settings is not None else None
    return Situation(
        resource_type,
        actor_role,
        actor_support,
        restricted,
        auto_add,
        False,
        other_role,
        facts.is_support_agent(other_user_id),
        ids,
    )


def build_world(
    situation: Situation, names: Names | None = None, observer: Observer | None = None, elsewhere: bool = False
) -> tuple[User, object]:
    """The actor and the resource, as Polar objects holding exactly the situation's facts.

    With `names`, the objects carry those real ids (explanations). Without, they
    carry symbolic ids reporting to `observer` (the compiler); `elsewhere` then
    gives each user a membership on another account as well.
    """
    if names is None and observer is None:
        raise ValueError("a world needs real names or an observer for its symbolic ids")

    def id_of(kind: str, slot: str) -> object:
        if names is not None:
            return getattr(names, slot)
        return SymbolicId(kind, slot, observer)

    account = Account(id_of(ACCOUNT, ACCOUNT_SLOT), situation.restricted, situation.auto_add)

    def user(slot: str, role: str | None, support: bool) -> User:
        held = [RoleOnAccount(account.id, role)] if role is not None else []
        other_account = None
        if names is None and elsewhere:
            other_account = RoleOnAccount(
                SymbolicId(ACCOUNT, elsewhere_slot(slot), observer), SymbolicId(ROLE, elsewhere_slot(slot), observer)
            )
        return User(id_of(USER, slot), support, Memberships(held, other_account, observer))

    actor = user(ACTOR, situation.actor_role, situation.actor_is_support_agent)
    if situation.other_user_is_actor:
        other = actor
    else:
        other = user(OTHER_USER, situation.other_user_role, situation.other_user_is_support_agent)
    kind = situation.resource_type
    if kind == "Account":
        resource: object = account
    elif kind == "Subscription":
        resource = Subscription(id_of(RESOURCE, RESOURCE_SLOT), account)
    elif kind == "SubscriptionInvoice":
        resource = SubscriptionInvoice(id_of(RESOURCE, RESOURCE_SLOT), account)
    elif kind == "Document":
        resource = Document(id_of(RESOURCE, RESOURCE_SLOT), account)
    elif kind == "PaymentMethod":
        resource = PaymentMethod(id_of(RESOURCE, RESOURCE_SLOT), account, other)
    elif kind == "Membership":
        resource = Membership(account, other, situation.other_user_role)
    else:
        raise ValueError(f"unknown resource type {kind!r}")
    return actor, resource
