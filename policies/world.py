"""The objects `policy.polar` reasons about, and the attributes a request names them by.

The policy never sees a database row. For every decision the service builds a
small world of these objects holding exactly the facts the rules may read:
the actor, the account with its two billing settings, the roles of the users
involved on that account, whether they are support agents, and for a payment
method its owner, for a membership its user.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ROLES = ("admin", "collaborator", "reader", "payment_manager")


@dataclass(frozen=True)
class RoleOnAccount:
    """One membership as the policy reads it: a role on an account."""

    account_id: str
    role: str


@dataclass(eq=False)
class User:
    id: str
    is_support_agent: bool = False
    memberships: list[RoleOnAccount] = field(default_factory=list)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, User) and other.id == self.id

    def __hash__(self) -> int:
        return hash(("User", self.id))


@dataclass(eq=False)
class Account:
    id: str
    restrict_subscription_to_payment_manager: bool = False
    auto_add_subscription_invoices_to_purchases: bool = True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Account) and other.id == self.id

    def __hash__(self) -> int:
        return hash(("Account", self.id))


@dataclass
class Subscription:
    id: str
    account: Account


@dataclass
class SubscriptionInvoice:
    id: str
    account: Account


@dataclass
class Document:
    id: str
    account: Account


@dataclass
class PaymentMethod:
    id: str
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
    `party` names the attribute that designates a second user whose facts the
    rules read (a payment method's owner, a membership's user), if any.
    """

    name: str
    attributes: tuple[str, ...]
    party: str | None = None


RESOURCE_TYPES: dict[str, ResourceType] = {
    t.name: t
    for t in (
        ResourceType("Account", ("id",)),
        ResourceType("Subscription", ("id", "account")),
        ResourceType("SubscriptionInvoice", ("id", "account")),
        ResourceType("Document", ("id", "account")),
        ResourceType("PaymentMethod", ("id", "account", "owner"), party="owner"),
        ResourceType("Membership", ("account", "user"), party="user"),
    )
}


def account_of(resource_type: str, attributes: dict[str, str]) -> str:
    """The id of the account a resource belongs to (an Account is its own)."""
    return attributes["id"] if resource_type == "Account" else attributes["account"]
