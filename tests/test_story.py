"""SPEC.md's story, end to end over HTTP: set-up, result, ending, customer service."""

from __future__ import annotations

from service.core.invariants import PAYMENT_MANAGER_PROTECTED
from tests.support import account, user

B = "acc_b"
CLIENT, PARTNER, SUPPORT = "u_client", "u_partner", "u_support"
PM_CARD = {"type": "PaymentMethod", "id": "pm_partner", "account": B, "owner": PARTNER}
CLIENT_CARD = {"type": "PaymentMethod", "id": "pm_client", "account": B, "owner": CLIENT}
SUBSCRIPTION = {"type": "Subscription", "id": "sub_b", "account": B}
INVOICE = {"type": "SubscriptionInvoice", "id": "inv_1", "account": B}
DOCUMENT = {"type": "Document", "id": "doc_1", "account": B}
WORKSPACE_PAGES = ["view_workspace"]
SUBSCRIPTION_PAGE = ["view_subscription", "manage_subscription", "manage_billing_settings", "manage_payment_methods"]


def test_the_partner_pays_for_the_client_then_stops(api):
    # Set-up 1: the partner signs the client company up; the client's user is the first admin.
    api.create_account(B, CLIENT, name="Entreprise B")
    # Set-up 2: on the client's account, the partner invites their own email as payment manager.
    assert api.invite(B, PARTNER, "payment_manager", acting_user=CLIENT).status == 201
    # Set-up 3: billing settings > advanced, as the payment manager.
    answer = api.settings(
        B, PARTNER, auto_add_subscription_invoices_to_purchases=False, restrict_subscription_to_payment_manager=True
    )
    assert answer.status == 200, answer
    assert answer.json["warnings"] == []
    revision = answer.json["revision"]

    # Result: the partner manages the subscription and sees no page of the workspace ...
    for action in SUBSCRIPTION_PAGE:
        assert api.allowed(PARTNER, action, account(B), at_least_revision=revision), action
    for action in ["view", "view_prices", "manage"]:
        assert api.allowed(PARTNER, action, SUBSCRIPTION), action
    assert api.allowed(PARTNER, "view", INVOICE) and api.allowed(PARTNER, "download", INVOICE)
    assert api.allowed(PARTNER, "read", account(B))
    for action in ["view_workspace", "edit_workspace", "view_members", "manage_members"]:
        assert not api.allowed(PARTNER, action, account(B)), action
    assert not api.allowed(PARTNER, "view", DOCUMENT)
    # ... the client sees every page but, although admin, not the subscription page, nor prices, nor invoices.
    assert api.allowed(CLIENT, "view_workspace", account(B))
    assert api.allowed(CLIENT, "view", DOCUMENT) and api.allowed(CLIENT, "delete", DOCUMENT)
    for action in SUBSCRIPTION_PAGE:
        assert not api.allowed(CLIENT, action, account(B)), action
    assert not api.allowed(CLIENT, "view_prices", SUBSCRIPTION)
    assert not api.allowed(CLIENT, "view", INVOICE)
    assert not api.allowed(CLIENT, "view", PM_CARD)

    # The payment manager cannot be removed before the restriction is lifted, word for word.
    refused = api.delete(f"/v1/accounts/{B}/members/{PARTNER}?acting_user={CLIENT}")
    assert refused.status == 409
    assert refused.json["error"]["message"] == PAYMENT_MANAGER_PROTECTED
    assert refused.json["error"]["message"] == (
        "Subscription Manager cannot be deleted when the admin does not have access to manage subscriptions. "
        "Please log in as a Subscription Manager and enable subscription access for the admin via the subscription page"
    )
    assert api.allowed(PARTNER, "manage_subscription", account(B))

    # Ending 1: the partner, as payer, unticks the restriction; the admin gets the subscription page back.
    answer = api.settings(B, PARTNER, restrict_subscription_to_payment_manager=False)
    assert answer.status == 200, answer
    assert api.allowed(CLIENT, "view_subscription", account(B), at_least_revision=answer.json["revision"])
    # Ending 2: the client's admin removes the payment manager.
    removed = api.delete(f"/v1/accounts/{B}/members/{PARTNER}?acting_user={CLIENT}")
    assert removed.status == 200, removed
    assert not api.allowed(PARTNER, "read", account(B), at_least_revision=removed.json["revision"])
    assert not api.allowed(PARTNER, "manage_subscription", account(B))
    # The former payment manager can no longer delete their own card ...
    assert not api.allowed(PARTNER, "delete", PM_CARD)
    # Ending 3: the admin adds their own payment method (they manage payment methods again).
    assert api.allowed(CLIENT, "manage_payment_methods", account(B))
    assert api.allowed(CLIENT, "delete", CLIENT_CARD)
    # Ending 4: customer service deletes the former payment manager's card.
    assert api.put(f"/v1/support-agents/{SUPPORT}").status == 200
    assert api.allowed(SUPPORT, "delete", PM_CARD)
    assert api.allowed(SUPPORT, "view", SUBSCRIPTION)
    assert not api.allowed(SUPPORT, "view_workspace", account(B))
    assert not api.allowed(SUPPORT, "manage_members", account(B))

    # Every step is in the change log, oldest first, with who asked.
    log = api.get(f"/v1/changes?account={B}").json["changes"]
    assert [entry["kind"] for entry in log] == [
        "account.create",
        "member.invite",
        "billing_settings.update",
        "billing_settings.update",
        "member.remove",
    ]
    assert [entry["acting_user"] for entry in log] == [None, CLIENT, PARTNER, PARTNER, CLIENT]
    assert log[4]["before"] == {"role": "payment_manager"} and log[4]["after"] == {"role": None}


def test_a_partner_manages_many_client_accounts(api):
    for number in range(5):
        api.create_account(f"acc_{number}", f"u_client_{number}")
        assert api.invite(f"acc_{number}", PARTNER, "payment_manager").status == 201
    for number in (1, 3):
        assert api.settings(f"acc_{number}", PARTNER, restrict_subscription_to_payment_manager=True).status == 200
    api.create_account("acc_other", "u_someone")
    assert api.invite("acc_other", PARTNER, "reader").status == 201
    listed = api.post(
        "/v1/list", {"actor": user(PARTNER), "action": "manage_subscription", "resource_type": "Account"}
    ).json
    assert listed["ids"] == [f"acc_{n}" for n in range(5)]
    assert listed["next_page_token"] is None
    readable = api.post("/v1/list", {"actor": user(PARTNER), "action": "read", "resource_type": "Account"}).json
    assert readable["ids"] == ["acc_0", "acc_1", "acc_2", "acc_3", "acc_4", "acc_other"]
    workspace = api.post(
        "/v1/list", {"actor": user(PARTNER), "action": "view_workspace", "resource_type": "Account"}
    ).json
    assert workspace["ids"] == ["acc_other"]
    # The admin of a restricted account no longer lists it for the subscription; the others yes.
    client_1 = api.post(
        "/v1/list", {"actor": user("u_client_1"), "action": "view_subscription", "resource_type": "Account"}
    ).json
    assert client_1["ids"] == []
    client_2 = api.post(
        "/v1/list", {"actor": user("u_client_2"), "action": "view_subscription", "resource_type": "Account"}
    ).json
    assert client_2["ids"] == ["acc_2"]


def test_the_leak_warning_configuration(api):
    api.create_account(B, CLIENT)
    api.invite(B, PARTNER, "payment_manager", acting_user=CLIENT)
    answer = api.settings(B, PARTNER, restrict_subscription_to_payment_manager=True)
    assert answer.status == 200
    assert answer.json["auto_add_subscription_invoices_to_purchases"] is True
    assert len(answer.json["warnings"]) == 1 and "purchases" in answer.json["warnings"][0]
    assert api.get(f"/v1/accounts/{B}/billing-settings").json["warnings"] == answer.json["warnings"]
    # The client's members then see the invoices in their purchases, though not the subscription page.
    assert api.allowed(CLIENT, "view", INVOICE) and api.allowed(CLIENT, "download", INVOICE)
    assert not api.allowed(CLIENT, "view_subscription", account(B))
    cleared = api.settings(B, PARTNER, auto_add_subscription_invoices_to_purchases=False)
    assert cleared.json["warnings"] == []
    assert not api.allowed(CLIENT, "view", INVOICE, at_least_revision=cleared.json["revision"])
