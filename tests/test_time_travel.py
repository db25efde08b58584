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


def test_a_past_policy_this_version_refuses_is_not_evaluated_some_other_way(api, app, database_url):
    """A policy recorded in the log that the compiler now refuses: as_of answers 409, never a guess or a 500."""
    from sqlalchemy import text as sql

    from models.changelog import canonical_json

    api.create_account(B, "u_client")
    unsound = "allow(user, \"read\", account) if user.email = \"x\";"  # reads an attribute nobody stores
    db = app.extensions["authz"].db
    with db.engine.begin() as connection:
        revision = connection.execute(sql("SELECT revision FROM revision_counter")).scalar_one()
        last = connection.execute(sql("SELECT hash FROM changes WHERE revision = :r"), {"r": revision}).scalar_one()
        connection.execute(
            sql(
                "INSERT INTO changes (revision, at, kind, account_id, user_id, acting_user, api_key, before, after,"
                " prev_hash, hash) VALUES (:r, '2026-01-01T00:00:00.000000Z', 'policy.load', NULL, NULL, NULL, NULL,"
                " '{}', :after, :prev, :hash)"
            ),
            {"r": revision + 1, "after": canonical_json({"sha256": "0" * 64, "text": unsound}), "prev": last,
             "hash": "f" * 64},
        )
        connection.execute(sql("UPDATE revision_counter SET revision = :r"), {"r": revision + 1})
    answer = api.post(
        "/v1/authorize",
        {"actor": user("u_client"), "action": "read", "resource": account(B), "as_of_revision": revision + 1},
    )
    assert answer.status == 409 and answer.error_code == "policy_not_enforceable", answer
    assert "cannot be enforced exactly" in answer.json["error"]["message"]
