"""Situations: every combination of facts a decision can depend on.

A decision about `(actor, action, resource)` reads only a handful of facts:
the actor's role on the resource's account, whether the actor is a support
agent, the account's two billing settings and, for a payment method or a
membership, the same facts about the other user involved (its owner, its
member). Those facts form a `Situation`. There are a few hundred situations in
all, so the policy is evaluated once per situation (see `engine.py`) and a
decision is a lookup; the policy stays the only place where rules live.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from policies.world import (
    RESOURCE_TYPES,
    ROLES,
    Account,
    Document,
    Membership,
    PaymentMethod,
    RoleOnAccount,
    Subscription,
    SubscriptionInvoice,
    User,
    account_of,
)

DEFAULT_RESTRICTED = False
DEFAULT_AUTO_ADD = True


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


@dataclass(frozen=True)
class Names:
    """The ids the objects of a world carry (placeholders when compiling)."""

    actor: str = "actor"
    account: str = "account"
    resource: str = "resource"
    other_user: str = "other_user"


class FactSource(Protocol):
    """Where the stored facts come from: the database, or a cache of it."""

    def account_settings(self, account_id: str) -> tuple[bool, bool] | None: ...

    def role(self, user_id: str, account_id: str) -> str | None: ...

    def is_support_agent(self, user_id: str) -> bool: ...


def all_situations(resource_type: str) -> Iterator[Situation]:
    """Every situation a decision about this resource type can be in."""
    has_other_user = RESOURCE_TYPES[resource_type].party is not None
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


def situation_of(facts: FactSource, resource_type: str, actor_id: str, attributes: dict[str, str]) -> Situation:
    """Read from `facts` the situation of a decision about the resource named by `attributes`."""
    account_id = account_of(resource_type, attributes)
    settings = facts.account_settings(account_id)
    restricted, auto_add = settings if settings is not None else (DEFAULT_RESTRICTED, DEFAULT_AUTO_ADD)
    actor_role = facts.role(actor_id, account_id) if settings is not None else None
    actor_support = facts.is_support_agent(actor_id)
    situation = Situation(resource_type, actor_role, actor_support, restricted, auto_add)
    party = RESOURCE_TYPES[resource_type].party
    if party is None:
        return situation
    other_id = attributes[party]
    if other_id == actor_id:
        return Situation(
            resource_type, actor_role, actor_support, restricted, auto_add, True, actor_role, actor_support
        )
    other_role = facts.role(other_id, account_id) if settings is not None else None
    return Situation(
        resource_type,
        actor_role,
        actor_support,
        restricted,
        auto_add,
        False,
        other_role,
        facts.is_support_agent(other_id),
    )


def build_world(situation: Situation, names: Names = Names()) -> tuple[User, object]:
    """The actor and the resource, as Polar objects holding exactly the situation's facts."""
    account = Account(names.account, situation.restricted, situation.auto_add)

    def user(user_id: str, role: str | None, support: bool) -> User:
        memberships = [RoleOnAccount(account.id, role)] if role is not None else []
        return User(user_id, support, memberships)

    actor = user(names.actor, situation.actor_role, situation.actor_is_support_agent)
    if situation.other_user_is_actor:
        other = actor
    else:
        other = user(names.other_user, situation.other_user_role, situation.other_user_is_support_agent)
    kind = situation.resource_type
    if kind == "Account":
        resource: object = account
    elif kind == "Subscription":
        resource = Subscription(names.resource, account)
    elif kind == "SubscriptionInvoice":
        resource = SubscriptionInvoice(names.resource, account)
    elif kind == "Document":
        resource = Document(names.resource, account)
    elif kind == "PaymentMethod":
        resource = PaymentMethod(names.resource, account, other)
    elif kind == "Membership":
        resource = Membership(account, other, situation.other_user_role)
    else:
        raise ValueError(f"unknown resource type {kind!r}")
    return actor, resource
