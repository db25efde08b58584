"""The objects `policy.polar` reasons about, and the attributes a request names them by.

The policy never sees a database row. For every decision the service builds a
small world of these objects holding exactly the facts the rules may read:
the actor, the account with its two billing settings, the roles of the users
involved on that account, whether they are support agents, and for a payment
method its owner, for a membership its user. A policy that reads anything
else (an attribute these classes do not have) is refused when it is loaded.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

ROLES = ("admin", "collaborator", "reader", "payment_manager")


@dataclass(frozen=True)
class RoleOnAccount:
    """One membership as the policy reads it: a role on an account."""

    account_id: Any  # a string; a symbolic id while the policy is compiled (see ids.py)
    role: Any


class Memberships:
    """A user's memberships, as the policy iterates them (`membership in user.memberships`).

    While the policy is compiled, the last one is a membership "elsewhere" (on
    another account); the iteration counts it as alive from the moment it is
    handed to the policy until the policy asks for the next one, so the
    compiler can tell whether an answer rested on it (see compiler.py).
    """

    def __init__(self, memberships: Iterable[RoleOnAccount], elsewhere: RoleOnAccount | None = None, observer=None):
        self.memberships = tuple(memberships)
        self.elsewhere = elsewhere
        self.observer = observer

    def __iter__(self) -> Iterator[RoleOnAccount]:
        yield from self.memberships
        if self.elsewhere is not None:
            self.observer.memberships_elsewhere_alive += 1
            yield self.elsewhere
            self.observer.memberships_elsewhere_alive -= 1

    def __eq__(self, other: object) -> bool:
        if self.observer is not None:
            from policies.ids import UnsupportedUse

            raise UnsupportedUse("compares a user's memberships as a whole")
        return isinstance(other, Memberships) and other.memberships == self.memberships

    __hash__ = None  # type: ignore[assignment]


@dataclass(eq=False)
class User:
    id: Any
    is_support_agent: bool = False
    memberships: Memberships = field(default_factory=lambda: Memberships(()))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, User) and other.id == self.id

    def __hash__(self) -> int:
        return hash(("User", self.id))


@dataclass(eq=False)
class Account:
    id: Any
    restrict_subscription_to_payment_manager: bool = False
    auto_add_subscription_invoices_to_purchases: bool = True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Account) and other.id == self.id

    def __hash__(self) -> int:
        return hash(("Account", self.id))


@dataclass
class Subscription:
    id: Any
    account: Account


@dataclass
class SubscriptionInvoice:
    id: Any
    account: Account


@dataclass
class Document:
    id: Any
    account: Account


@dataclass
class PaymentMethod:
    id: Any
    account: Account
    owner: User


@dataclass
class Membership:
    """A user's membership of an account; `role` is None when there is none."""

    account: Account
    user: User
    role: str | None


POLAR_CLASSES = (User, Account, Subscription, SubscriptionInvoice, Document, PaymentMethod, Membership)


@dataclass(frozen=True)
class ResourceType:
    """How a request names a resource of one type.

    `attributes` are the request fields besides `type`, all required.
    `other_user` names the attribute that designates a second user whose facts
    the rules read (a payment method's owner, a membership's user), if any.
    """

    name: str
    attributes: tuple[str, ...]
    other_user: str | None = None


RESOURCE_TYPES: dict[str, ResourceType] = {
    t.name: t
    for t in (
        ResourceType("Account", ("id",)),
        ResourceType("Subscription", ("id", "account")),
        ResourceType("SubscriptionInvoice", ("id", "account")),
        ResourceType("Document", ("id", "account")),
        ResourceType("PaymentMethod", ("id", "account", "owner"), other_user="owner"),
        ResourceType("Membership", ("account", "user"), other_user="user"),
    )
}


def account_of(resource_type: str, attributes: dict[str, str]) -> str:
    """The id of the account a resource belongs to (an Account is its own)."""
    return attributes["id"] if resource_type == "Account" else attributes["account"]
