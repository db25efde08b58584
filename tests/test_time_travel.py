"""Time travel: decisions as of a past revision, from facts rebuilt from the change log."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from service.cli import main
from tests.support import account, user

B = "acc_b"


@pytest.fixture
def history(api):
    """The story's revisions, by name."""
    revisions = {"signed_up": api.create_account(B, "u_client").json["revision"]}
    revisions["invited"] = api.invite(B, "u_partner", "payment_manager", acting_user="u_client").json["revision"]
    revisions["restricted"] = api.settings(B, "u_partner", restrict_subscription_to_payment_manager=True).json["revision"]
    revisions["lifted"] = api.settings(B, "u_partner", restrict_subscription_to_payment_manager=False).json["revision"]
    revisions["removed"] = api.delete(f"/v1/accounts/{B}/members/u_partner?acting_user=u_client").json["revision"]
    revisions["support"] = api.put("/v1/support-agents/u_support").json["revision"]
    return revisions


def as_of(api, actor: str, action: str, resource: dict, revision: int, **extra) -> dict:
    answer = api.post(
        "/v1/authorize", {"actor": user(actor), "action": action, "resource": resource, "as_of_revision": revision, **extra}
    )
    assert answer.status == 200, answer
    return answer.json


def test_did_the_client_see_the_subscription_page_at_each_revision(api, history):
    page = ("u_client", "view_subscription", account(B))
    assert as_of(api, *page, history["invited"])["allowed"] is True
    denied = as_of(api, *page, history["restricted"], explain=True)
    assert denied["allowed"] is False and denied["revision"] == history["restricted"]
    assert denied["explanation"]["summary"] == (
        "u_client may not view_subscription account acc_b: u_client is admin of acc_b, "
        "but acc_b restricts subscription management to its payment manager"
    )
    assert as_of(api, *page, history["lifted"])["allowed"] is True
    assert api.allowed(*page)


def test_the_partner_and_support_through_history(api, history):
    assert as_of(api, "u_partner", "read", account(B), history["signed_up"])["allowed"] is False
    assert as_of(api, "u_partner", "read", account(B), history["invited"])["allowed"] is True
    assert as_of(api, "u_partner", "read", account(B), history["removed"])["allowed"] is False
    card = {"type": "PaymentMethod", "id": "pm", "account": B, "owner": "u_partner"}
    assert as_of(api, "u_support", "delete", card, history["removed"])["allowed"] is False
    assert as_of(api, "u_support", "delete", card, history["support"])["allowed"] is True
    actions = api.post(
        "/v1/actions", {"actor": user("u_partner"), "resource": account(B), "as_of_revision": history["restricted"]}
    ).json
    assert actions["actions"] == [
        "manage_billing_settings", "manage_payment_methods", "manage_subscription", "read", "view_subscription",
    ]
    assert actions["revision"] == history["restricted"]


def test_history_comes_from_the_log_not_from_the_tables(app, api, history):
    with app.extensions["authz"].db.engine.begin() as connection:
        connection.execute(text("DELETE FROM memberships"))
        connection.execute(text("DELETE FROM support_agents"))
    assert as_of(api, "u_client", "manage_members", account(B), history["support"])["allowed"] is True


def test_time_travel_refuses_the_future_and_mixed_requests(api, history):
    ahead = api.post(
        "/v1/authorize",
        {"actor": user("u_client"), "action": "read", "resource": account(B), "as_of_revision": history["support"] + 1},
    )
    assert ahead.status == 400 and ahead.error_code == "revision_ahead"
    both = api.post(
        "/v1/authorize",
        {"actor": user("u_client"), "action": "read", "resource": account(B), "as_of_revision": 1, "at_least_revision": 1},
    )
    assert both.status == 400 and "as_of_revision" in both.json["error"]["message"]


def test_authz_explain_as_of_a_revision(api, history, database_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database_url)
    runner = CliRunner()
    result = runner.invoke(
        main, ["explain", "--as-of-revision", str(history["restricted"]), "u_client", "view_subscription", "Account", "id=acc_b"]
    )
    assert result.exit_code == 0, result.output
    assert f"DENIED at revision {history['restricted']} (as of that revision)" in result.output
    assert "acc_b restricts subscription management to its payment manager" in result.output
    now = runner.invoke(main, ["check", "u_client", "view_subscription", "Account", "id=acc_b"])
    assert now.exit_code == 0
