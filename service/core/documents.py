"""What the write path answers about an account: its document, its billing settings and their warnings."""

from __future__ import annotations

from models.tables import AccountRow

SETTINGS = ("restrict_subscription_to_payment_manager", "auto_add_subscription_invoices_to_purchases")
# Allowed (the source treats them as two settings), but the client's members then see what the partner pays.
LEAK_WARNING = (
    "Subscription management is restricted to the payment manager, but subscription invoices are still added "
    "to this account's purchases: its admins, collaborators and readers can see what the payment manager pays."
)


def settings_document(account: AccountRow) -> dict:
    document = {"account": account.id, **{name: bool(getattr(account, name)) for name in SETTINGS}}
    document["warnings"] = (
        [LEAK_WARNING]
        if document["restrict_subscription_to_payment_manager"]
        and document["auto_add_subscription_invoices_to_purchases"]
        else []
    )
    return document


def account_document(account: AccountRow, members: list[dict]) -> dict:
    settings = {name: bool(getattr(account, name)) for name in SETTINGS}
    return {"id": account.id, "name": account.name, "billing_settings": settings, "members": members}
