"""SPEC.md's rules table, written again in plain Python, independently of policy.polar.

The decision-table test compares the policy's answer with this one in every
situation; a disagreement is a mistake in one of them.
"""

from __future__ import annotations

from policies.situations import Situation

WORKSPACE_ROLES = {"admin", "collaborator", "reader"}


def is_subscription_manager(role: str | None, restricted: bool) -> bool:
    """Its payment manager, plus its admins unless the account is restricted."""
    return role == "payment_manager" or (role == "admin" and not restricted)


def expected(s: Situation, action: str) -> bool:
    role = s.actor_role
    manager = is_subscription_manager(role, s.restricted)
    support = s.actor_is_support_agent
    rules = {
        "Account": {
            "read": role is not None,
            "view_workspace": role in WORKSPACE_ROLES,
            "edit_workspace": role in {"admin", "collaborator"},
            "view_members": role == "admin",
            "manage_members": role == "admin",
            "view_subscription": manager,
            "manage_subscription": manager,
            "manage_billing_settings": manager,
            "manage_payment_methods": manager,
        },
        "Subscription": {
            "view": manager or support,
            "view_prices": manager,
            "manage": manager,
        },
        "SubscriptionInvoice": {
            "view": manager or (s.auto_add and role in WORKSPACE_ROLES),
            "download": manager or (s.auto_add and role in WORKSPACE_ROLES),
        },
        "PaymentMethod": {
            "view": manager or support,
            "delete": (s.other_user_is_actor and manager) or support,
        },
        "Membership": {
            "remove": role == "admin"
            and s.other_user_role is not None
            and not (s.other_user_role == "payment_manager" and s.restricted),
            "change_role": role == "admin"
            and s.other_user_role is not None
            and not (s.other_user_role == "payment_manager" and s.restricted),
        },
        "Document": {
            "view": role in WORKSPACE_ROLES,
            "edit": role in {"admin", "collaborator"},
            "delete": role == "admin",
        },
    }
    return rules[s.resource_type].get(action, False)


ACTIONS = {
    "Account": [
        "read", "view_workspace", "edit_workspace", "view_members", "manage_members",
        "view_subscription", "manage_subscription", "manage_billing_settings", "manage_payment_methods",
    ],
    "Subscription": ["view", "view_prices", "manage"],
    "SubscriptionInvoice": ["view", "download"],
    "PaymentMethod": ["view", "delete"],
    "Membership": ["remove", "change_role"],
    "Document": ["view", "edit", "delete"],
}
