"""The decision endpoints: authorize, explain, batch, actions, list, at_least_revision."""

from __future__ import annotations

import pytest

from policies.engine import load_policy
from tests.support import account, user

A = "acc_1"


@pytest.fixture
def seeded(api):
    api.create_account(A, "u_admin")
    api.invite(A, "u_pm", "payment_manager")
    api.invite(A, "u_reader", "reader")
    api.settings(A, None, restrict_subscription_to_payment_manager=True)
    return api


def test_authorize_answers_allowed_revision_and_policy(seeded):
    answer = seeded.post("/v1/authorize", {"actor": user("u_pm"), "action": "manage_subscription", "resource": account(A)})
    assert answer.status == 200
    assert answer.json == {"allowed": True, "revision": seeded.revision(), "policy": load_policy().sha256}
    assert "explanation" not in answer.json


def test_unknown_people_and_accounts_are_denied(seeded):
    assert not seeded.allowed("u_stranger", "read", account(A))
    assert not seeded.allowed("u_admin", "read", account("acc_nope"))
    assert not seeded.allowed("u_admin", "view", {"type": "Document", "id": "d", "account": "acc_nope"})


def test_a_membership_that_does_not_exist_grants_nothing(seeded):
    assert not seeded.allowed("u_admin", "remove", {"type": "Membership", "account": A, "user": "u_nobody"})
    assert seeded.allowed("u_admin", "remove", {"type": "Membership", "account": A, "user": "u_reader"})
    assert not seeded.allowed("u_admin", "remove", {"type": "Membership", "account": A, "user": "u_pm"})


def test_explain_says_why_in_business_words(seeded):
    denied = seeded.post(
        "/v1/authorize",
        {"actor": user("u_admin"), "action": "view_subscription", "resource": account(A), "explain": True},
    ).json
    assert denied["allowed"] is False
    explanation = denied["explanation"]
    assert explanation["summary"] == (
        "u_admin may not view_subscription account acc_1: u_admin is admin of acc_1, "
        "but acc_1 restricts subscription management to its payment manager"
    )
    assert "acc_1 does not restrict subscription management to its payment manager" in explanation["would_be_allowed_if"]
    assert [rule["holds"] for rule in explanation["rules"]] == [False]
    allowed = seeded.post(
        "/v1/authorize",
        {"actor": user("u_pm"), "action": "manage_subscription", "resource": account(A), "explain": True},
    ).json
    assert allowed["allowed"] is True
    assert allowed["explanation"]["summary"].startswith(
        "u_pm may manage_subscription account acc_1 because u_pm is payment_manager of acc_1"
    )
    assert "u_pm is a subscription manager of acc_1" in allowed["explanation"]["facts"]
    holding = [rule for rule in allowed["explanation"]["rules"] if rule["holds"]]
    assert holding and '"manage_subscription" if "subscription_manager";' in holding[0]["rule"]
    assert holding[0]["says"].startswith("Subscription managers")


def test_explain_a_support_agent_deleting_a_card(seeded):
    seeded.put("/v1/support-agents/u_s")
    card = {"type": "PaymentMethod", "id": "pm_7", "account": A, "owner": "u_pm"}
    answer = seeded.post(
        "/v1/authorize", {"actor": user("u_s"), "action": "delete", "resource": card, "explain": True}
    ).json
    assert answer["allowed"] is True
    assert "u_s is a support agent" in answer["explanation"]["summary"]
    assert any(rule["holds"] and "is_support_agent" in rule["rule"] for rule in answer["explanation"]["rules"])


def test_batch_answers_in_order_on_one_revision(seeded):
    checks = [
        {"actor": user("u_pm"), "action": "view_subscription", "resource": account(A)},
        {"actor": user("u_admin"), "action": "view_subscription", "resource": account(A)},
        {"actor": user("u_reader"), "action": "view", "resource": {"type": "Document", "id": "d1", "account": A}},
        {"actor": user("u_pm"), "action": "view", "resource": {"type": "Document", "id": "d1", "account": A}},
    ]
    answer = seeded.post("/v1/authorize/batch", {"checks": checks})
    assert answer.status == 200
    assert answer.json["results"] == [{"allowed": True}, {"allowed": False}, {"allowed": True}, {"allowed": False}]
    assert answer.json["revision"] == seeded.revision()
    assert seeded.post("/v1/authorize/batch", {"checks": []}).json["results"] == []
    full = seeded.post("/v1/authorize/batch", {"checks": checks * 250})
    assert full.status == 200 and len(full.json["results"]) == 1000


def test_actions_are_sorted(seeded):
    answer = seeded.post("/v1/actions", {"actor": user("u_admin"), "resource": account(A)}).json
    assert answer["actions"] == ["edit_workspace", "manage_members", "read", "view_members", "view_workspace"]
    assert seeded.post("/v1/actions", {"actor": user("u_x"), "resource": account(A)}).json["actions"] == []


def test_list_pages_through_the_complete_sorted_list(api):
    for number in range(25):
        api.create_account(f"acc_{number:03d}", "u_owner")
        api.invite(f"acc_{number:03d}", "u_partner", "payment_manager")
    api.create_account("acc_not_mine", "u_other")
    request = {"actor": user("u_partner"), "action": "manage_subscription", "resource_type": "Account"}
    everything = api.post("/v1/list", request).json
    assert everything["ids"] == [f"acc_{n:03d}" for n in range(25)] and everything["next_page_token"] is None
    pages, token = [], None
    while True:
        body = {**request, "page_size": 10, **({"page_token": token} if token else {})}
        page = api.post("/v1/list", body).json
        pages.append(page["ids"])
        token = page["next_page_token"]
        if token is None:
            break
    assert [len(p) for p in pages] == [10, 10, 5]
    assert sum(pages, []) == everything["ids"]
    exact = api.post("/v1/list", {**request, "page_size": 25}).json
    assert len(exact["ids"]) == 25 and exact["next_page_token"] is None
    other = api.post("/v1/list", {**request, "resource_type": "Document"})
    assert other.status == 400 and "resource_type" in other.json["error"]["message"]


def test_at_least_revision(seeded):
    latest = seeded.revision()
    assert seeded.allowed("u_pm", "read", account(A), at_least_revision=latest)
    assert seeded.allowed("u_pm", "read", account(A), at_least_revision=0)
    ahead = seeded.post(
        "/v1/authorize",
        {"actor": user("u_pm"), "action": "read", "resource": account(A), "at_least_revision": latest + 5},
    )
    assert ahead.status == 400 and ahead.error_code == "revision_ahead"


def test_a_removal_is_never_followed_by_a_stale_allowed(api):
    api.create_account(A, "u_admin")
    for round_number in range(20):
        member = f"u_{round_number}"
        invited = api.invite(A, member, "collaborator").json["revision"]
        assert api.allowed(member, "edit_workspace", account(A), at_least_revision=invited)
        removed = api.delete(f"/v1/accounts/{A}/members/{member}").json["revision"]
        assert not api.allowed(member, "edit_workspace", account(A), at_least_revision=removed)
        assert not api.allowed(member, "edit_workspace", account(A))


def test_the_largest_revisions_are_answers_not_errors(api):
    """Revisions are 64-bit: any the API accepts can be compared, on both databases."""
    api.create_account(A, "u_admin")
    assert api.get("/v1/changes?after=1099511627776").json["changes"] == []
    for name in ("as_of_revision", "at_least_revision"):
        ahead = api.post("/v1/authorize", {"actor": user("u_admin"), "action": "read", "resource": account(A), name: 2**63 - 1})
        assert ahead.status == 400 and ahead.error_code == "revision_ahead", name
