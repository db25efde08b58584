"""The invariants of the data (SPEC: "Invariants the write API enforces"), each a named refusal.

A change that would break one is refused with `BreaksInvariant`, its `code` naming the
invariant, and nothing is written. They hold whoever asks, after the acting user's
permission is checked (except invariant 1, answered first to the member managers, in
the product's own words). The schema holds 4 and 5 as well, against concurrent changes.
"""

from __future__ import annotations

from models.tables import AccountRow, MembershipRow
from models.transactions import Transaction
from service.core.errors import BreaksInvariant

PAYMENT_MANAGER_PROTECTED = (
    "Subscription Manager cannot be deleted when the admin does not have access to manage subscriptions. "
    "Please log in as a Subscription Manager and enable subscription access for the admin via the subscription page"
)


def protects_payment_manager(account: AccountRow, membership: MembershipRow) -> bool:
    """Invariant 1: while the account restricts subscription management, its payment manager stays as they are."""
    return membership.role == "payment_manager" and bool(account.restrict_subscription_to_payment_manager)


def refuse_restriction_without_payment_manager(tx: Transaction, account_id: str) -> None:
    """Invariant 2: restricting subscription management needs a payment manager to manage it."""
    if tx.holder_of(account_id, "payment_manager") is None:
        raise _no_payment_manager(account_id)


def _no_payment_manager(account_id: str) -> BreaksInvariant:
    return BreaksInvariant(
        f"account {account_id} has no payment manager: restricting subscription management to the "
        "payment manager would leave nobody able to manage its subscription",
        "no_payment_manager",
    )


def refuse_to_lose_last_admin(tx: Transaction, account_id: str, user: str) -> None:
    """Invariant 3: an account always keeps at least one admin."""
    if tx.count_with_role(account_id, "admin") <= 1:
        raise BreaksInvariant(
            f"{user} is the last admin of account {account_id}: an account always keeps at least one admin",
            "last_admin",
        )


def refuse_second_payment_manager(tx: Transaction, account_id: str) -> None:
    """Invariant 4: an account has at most one payment manager."""
    current = tx.holder_of(account_id, "payment_manager")
    if current is not None:
        raise _payment_manager_exists(account_id, current)


def _payment_manager_exists(account_id: str, current: str) -> BreaksInvariant:
    return BreaksInvariant(
        f"account {account_id} already has a payment manager ({current}): an account has at most one",
        "payment_manager_exists",
    )


def refuse_second_role(tx: Transaction, account_id: str, user: str) -> None:
    """Invariant 5: one role per user and account; a second invitation changes nothing and says so."""
    existing = tx.membership(account_id, user)
    if existing is not None:
        raise BreaksInvariant(
            f"{user} is already {existing.role} of account {account_id}; nothing changed "
            "(one role per user and account: change the role instead)",
            "already_member",
        )


def second_role(account_id: str, user: str, role: str, other_role: str) -> BreaksInvariant:
    """Invariant 5, for an account given whole (bulk import): the same user named with two roles."""
    return BreaksInvariant(
        f"{user} is named both {other_role} and {role} of account {account_id}: one role per user and account",
        "already_member",
    )


def breaches_of_whole_account(account_id: str, *, restricted: bool, roles: dict[str, str]) -> list[BreaksInvariant]:
    """Invariants 2, 3 and 4 on an account given whole, with every member's role (bulk import); [] if it holds."""
    breaches = []
    if "admin" not in roles.values():
        breaches.append(BreaksInvariant(
            f"account {account_id} has no admin: an account always keeps at least one admin", "no_admin"
        ))
    payment_managers = sorted(user for user, role in roles.items() if role == "payment_manager")
    if len(payment_managers) > 1:
        breaches.append(BreaksInvariant(
            f"account {account_id} names {len(payment_managers)} payment managers ({', '.join(payment_managers)}): "
            "an account has at most one",
            "payment_manager_exists",
        ))
    if restricted and not payment_managers:
        breaches.append(_no_payment_manager(account_id))
    return breaches
