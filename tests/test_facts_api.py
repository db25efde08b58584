"""The fact endpoints: accounts, billing settings, members, support agents, the change log, and the invariants."""

from __future__ import annotations

import pytest

from service.core.invariants import PAYMENT_MANAGER_PROTECTED
from tests.support import account

A = "acc_1"


@pytest.fixture
def seeded(api):
    """acc_1: u_admin admin, u_collab collaborator, u_reader reader, u_pm payment manager."""
    api.create_account(A, "u_admin", name="Company One")
    for member, role in [("u_collab", "collaborator"), ("u_reader", "reader"), ("u_pm", "payment_manager")]:
        assert api.invite(A, member, role, acting_user="u_admin").status == 201
    return api


def test_create_and_read_an_account(api):
    base = api.revision()  # the policy's own entry in the change log
    created = api.post("/v1/accounts", {"id": A, "name": "Company One", "admin": "u_1"})
    assert created.status == 201
    assert created.json == {
        "id": A,
        "name": "Company One",
        "billing_settings": {
            "restrict_subscription_to_payment_manager": False,
            "auto_add_subscription_invoices_to_purchases": True,
        },
        "members": [{"user": "u_1", "role": "admin"}],
        "revision": base + 1,
    }
    fetched = api.get(f"/v1/accounts/{A}")
    assert fetched.status == 200 and fetched.json == created.json
    again = api.post("/v1/accounts", {"id": A, "name": "Other", "admin": "u_2"})
    assert again.status == 409 and again.error_code == "account_exists"
    assert api.get("/v1/accounts/nope").status == 404
    assert api.get("/v1/accounts/nope").error_code == "account_not_found"


def test_reads_for_a_person_are_checked_with_the_policy(seeded):
    assert seeded.get(f"/v1/accounts/{A}?acting_user=u_reader").status == 200
    assert seeded.get(f"/v1/accounts/{A}?acting_user=u_stranger").status == 403
    assert seeded.get(f"/v1/accounts/{A}/members?acting_user=u_admin").status == 200
    assert seeded.get(f"/v1/accounts/{A}/members?acting_user=u_collab").status == 403
    assert seeded.get(f"/v1/accounts/{A}/billing-settings?acting_user=u_pm").status == 200
    assert seeded.get(f"/v1/accounts/{A}/billing-settings?acting_user=u_reader").status == 403


def test_members_are_listed_in_user_order(seeded):
    members = seeded.get(f"/v1/accounts/{A}/members").json
    assert members["account"] == A
    assert members["members"] == [
        {"user": "u_admin", "role": "admin"},
        {"user": "u_collab", "role": "collaborator"},
        {"user": "u_pm", "role": "payment_manager"},
        {"user": "u_reader", "role": "reader"},
    ]


def test_only_admins_manage_members(seeded):
    for acting_user in ["u_collab", "u_reader", "u_pm", "u_stranger"]:
        answer = seeded.invite(A, "u_new", "reader", acting_user=acting_user)
        assert answer.status == 403, (acting_user, answer)
        assert answer.error_code == "forbidden"
        assert seeded.patch(f"/v1/accounts/{A}/members/u_reader", {"role": "admin", "acting_user": acting_user}).status == 403
        assert seeded.delete(f"/v1/accounts/{A}/members/u_reader?acting_user={acting_user}").status == 403
    changed = seeded.patch(f"/v1/accounts/{A}/members/u_reader", {"role": "collaborator", "acting_user": "u_admin"})
    assert changed.status == 200 and changed.json["role"] == "collaborator"
    assert seeded.allowed("u_reader", "edit_workspace", account(A), at_least_revision=changed.json["revision"])


def test_invariant_1_the_payment_manager_stays_while_restricted(seeded):
    assert seeded.settings(A, "u_pm", restrict_subscription_to_payment_manager=True).status == 200
    before = seeded.revision()
    for acting in ["?acting_user=u_admin", ""]:  # the admin, and a trusted system change
        removed = seeded.delete(f"/v1/accounts/{A}/members/u_pm{acting}")
        assert removed.status == 409
        assert removed.json == {"error": {"code": "payment_manager_protected", "message": PAYMENT_MANAGER_PROTECTED}}
    body = {"role": "reader", "acting_user": "u_admin"}
    changed = seeded.patch(f"/v1/accounts/{A}/members/u_pm", body)
    assert changed.status == 409 and changed.json["error"]["message"] == PAYMENT_MANAGER_PROTECTED
    # Someone who does not manage members is simply not allowed.
    assert seeded.delete(f"/v1/accounts/{A}/members/u_pm?acting_user=u_collab").status == 403
    assert seeded.revision() == before
    assert seeded.get(f"/v1/accounts/{A}/members").json["members"][2] == {"user": "u_pm", "role": "payment_manager"}


def test_invariant_2_no_restriction_without_a_payment_manager(api):
    api.create_account(A, "u_admin")
    refused = api.settings(A, "u_admin", restrict_subscription_to_payment_manager=True)
    assert refused.status == 409 and refused.error_code == "no_payment_manager"
    assert api.get(f"/v1/accounts/{A}/billing-settings").json["restrict_subscription_to_payment_manager"] is False
    assert api.settings(A, None, restrict_subscription_to_payment_manager=True).status == 409


def test_invariant_3_an_account_keeps_an_admin(seeded):
    removed = seeded.delete(f"/v1/accounts/{A}/members/u_admin?acting_user=u_admin")
    assert removed.status == 409 and removed.error_code == "last_admin"
    demoted = seeded.patch(f"/v1/accounts/{A}/members/u_admin", {"role": "reader"})
    assert demoted.status == 409 and demoted.error_code == "last_admin"
    assert seeded.patch(f"/v1/accounts/{A}/members/u_collab", {"role": "admin", "acting_user": "u_admin"}).status == 200
    assert seeded.delete(f"/v1/accounts/{A}/members/u_admin?acting_user=u_collab").status == 200
    assert seeded.delete(f"/v1/accounts/{A}/members/u_collab").error_code == "last_admin"


def test_invariant_4_one_payment_manager(seeded):
    second = seeded.invite(A, "u_pm2", "payment_manager", acting_user="u_admin")
    assert second.status == 409 and second.error_code == "payment_manager_exists"
    promoted = seeded.patch(f"/v1/accounts/{A}/members/u_reader", {"role": "payment_manager"})
    assert promoted.status == 409 and promoted.error_code == "payment_manager_exists"
    assert seeded.patch(f"/v1/accounts/{A}/members/u_pm", {"role": "reader"}).status == 200
    assert seeded.patch(f"/v1/accounts/{A}/members/u_reader", {"role": "payment_manager"}).status == 200


def test_invariant_5_one_role_per_user_and_account(seeded):
    before = seeded.revision()
    again = seeded.invite(A, "u_reader", "collaborator", acting_user="u_admin")
    assert again.status == 409 and again.error_code == "already_member"
    assert "nothing changed" in again.json["error"]["message"]
    assert seeded.revision() == before


def test_setting_a_role_to_the_same_role_changes_nothing(seeded):
    before = seeded.revision()
    same = seeded.patch(f"/v1/accounts/{A}/members/u_reader", {"role": "reader", "acting_user": "u_admin"})
    assert same.status == 200 and same.json["revision"] == before


def test_unknown_members_and_accounts_are_404(seeded):
    assert seeded.delete(f"/v1/accounts/{A}/members/u_nobody").error_code == "member_not_found"
    assert seeded.patch(f"/v1/accounts/{A}/members/u_nobody", {"role": "reader"}).status == 404
    assert seeded.invite("acc_nope", "u_x", "reader").status == 404
    assert seeded.settings("acc_nope", None, restrict_subscription_to_payment_manager=False).status == 404
    assert seeded.get("/v1/accounts/acc_nope/members").status == 404


def test_billing_settings_need_a_subscription_manager(seeded):
    for acting_user in ["u_collab", "u_reader", "u_stranger"]:
        assert seeded.settings(A, acting_user, auto_add_subscription_invoices_to_purchases=False).status == 403
    assert seeded.settings(A, "u_admin", auto_add_subscription_invoices_to_purchases=False).status == 200
    assert seeded.settings(A, "u_pm", restrict_subscription_to_payment_manager=True).status == 200
    assert seeded.settings(A, "u_admin", restrict_subscription_to_payment_manager=False).status == 403
    unchanged = seeded.settings(A, "u_pm", restrict_subscription_to_payment_manager=True)
    assert unchanged.status == 200 and unchanged.json["revision"] == seeded.revision()


def test_support_agents(api):
    base = api.revision()
    made = api.put("/v1/support-agents/u_s")
    assert made.status == 200 and made.json == {"user": "u_s", "support_agent": True, "revision": base + 1}
    again = api.put("/v1/support-agents/u_s")
    assert again.status == 200 and again.json["revision"] == base + 1
    card = {"type": "PaymentMethod", "id": "pm_1", "account": "acc_x", "owner": "u_o"}
    assert api.allowed("u_s", "delete", card)
    gone = api.delete("/v1/support-agents/u_s")
    assert gone.status == 200 and gone.json["support_agent"] is False
    assert not api.allowed("u_s", "delete", card, at_least_revision=gone.json["revision"])
    assert api.delete("/v1/support-agents/u_s").status == 404


def test_the_change_log_pages_and_filters(seeded):
    everything = seeded.get("/v1/changes").json
    assert [c["revision"] for c in everything["changes"]] == [1, 2, 3, 4, 5]
    assert everything["changes"][0]["kind"] == "policy.load"  # the policy in force is the first entry
    assert everything["next_after"] is None and everything["revision"] == 5
    first = seeded.get("/v1/changes?limit=3").json
    assert [c["revision"] for c in first["changes"]] == [1, 2, 3] and first["next_after"] == 3
    rest = seeded.get("/v1/changes?after=3&limit=3").json
    assert [c["revision"] for c in rest["changes"]] == [4, 5] and rest["next_after"] is None
    assert seeded.get("/v1/changes?account=acc_other").json["changes"] == []
    entry = everything["changes"][2]
    assert entry["kind"] == "member.invite" and entry["user"] == "u_collab" and entry["acting_user"] == "u_admin"
    assert entry["api_key"] == "preshared" and entry["prev_hash"] == everything["changes"][1]["hash"]


def test_every_write_answers_a_new_revision(api):
    base = api.revision()
    revisions = [api.create_account(A, "u_admin").json["revision"]]
    revisions.append(api.invite(A, "u_r", "reader").json["revision"])
    revisions.append(api.settings(A, None, auto_add_subscription_invoices_to_purchases=False).json["revision"])
    revisions.append(api.patch(f"/v1/accounts/{A}/members/u_r", {"role": "collaborator"}).json["revision"])
    revisions.append(api.delete(f"/v1/accounts/{A}/members/u_r").json["revision"])
    revisions.append(api.put("/v1/support-agents/u_s").json["revision"])
    revisions.append(api.delete("/v1/support-agents/u_s").json["revision"])
    assert revisions == list(range(base + 1, base + 8))
