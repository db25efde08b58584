"""The access review (SPEC "Access review"): who holds what, checked against the service's own decisions."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner

from policies.world import RESOURCE_TYPES
from service.cli import main
from service.core.api_keys import create_key
from tests.audit_html import basic, page, parse
from tests.support import TEST_KEY, user

B = "acc_b"


@pytest.fixture
def story(api):
    """SPEC's set-up: u_client admin of acc_b, u_partner its payment manager, restricted, invoices kept out;
    u_reader a reader; u_support a support agent; acc_c where u_partner is a collaborator."""
    api.create_account(B, "u_client")
    assert api.invite(B, "u_partner", "payment_manager", acting_user="u_client").status == 201
    assert api.invite(B, "u_reader", "reader", acting_user="u_client").status == 201
    restricted = api.settings(
        B, "u_partner", restrict_subscription_to_payment_manager=True, auto_add_subscription_invoices_to_purchases=False
    )
    assert restricted.status == 200
    assert api.put("/v1/support-agents/u_support", {}).status == 200
    api.create_account("acc_c", "u_other")
    assert api.invite("acc_c", "u_partner", "collaborator", acting_user="u_other").status == 201
    return api


def _resource(resource_type: str, account: str, other: str = "u_nobody") -> dict:
    attributes = {"id": account if resource_type == "Account" else "r_1", "account": account, "owner": other,
                  "user": other}
    return {"type": resource_type, **{name: attributes[name] for name in RESOURCE_TYPES[resource_type].attributes}}


def _decided(api, actor: str, resource: dict) -> set[str]:
    answer = api.post("/v1/actions", {"actor": user(actor), "resource": resource})
    assert answer.status == 200, answer
    return set(answer.json["actions"])


def test_the_account_review_is_what_the_service_decides(story):
    review = story.get(f"/v1/access-review?account={B}")
    assert review.status == 200, review
    body = review.json
    assert body["account"] == B and body["revision"] == story.revision()
    assert body["policy"] == story.get("/v1/policy").json["sha256"]
    subjects = {s["user"]: s for s in body["subjects"]}
    assert list(subjects) == ["u_client", "u_partner", "u_reader", "u_support"]  # u_other holds nothing on acc_b
    assert (subjects["u_support"]["role"], subjects["u_support"]["support_agent"]) == (None, True)
    assert subjects["u_partner"]["role"] == "payment_manager"
    assert "view_workspace" not in subjects["u_partner"]["actions"]["Account"]
    assert "view_subscription" not in subjects["u_client"]["actions"]["Account"]  # restricted
    assert {"action": "delete", "condition": "own payment methods only"} in subjects["u_partner"]["actions"]["PaymentMethod"]
    assert {"action": "delete", "condition": "any payment method"} in subjects["u_support"]["actions"]["PaymentMethod"]

    mismatches = []
    for name, subject in subjects.items():
        for resource_type, kind in RESOURCE_TYPES.items():
            listed = subject["actions"].get(resource_type, [])
            if kind.other_user is None:
                decided = _decided(story, name, _resource(resource_type, B))
                if set(listed) != decided:
                    mismatches.append((name, resource_type, listed, decided))
                continue
            # Every action listed with its condition holds for the people the condition names, and only them.
            others = {"own": name, "stranger": "u_stranger"}
            others.update({other: other for other in ("u_client", "u_partner", "u_reader", "u_support") if other != name})
            granted = {label: _decided(story, name, _resource(resource_type, B, other)) for label, other in others.items()}
            if resource_type == "Membership":
                granted.pop("stranger")  # a membership that does not exist grants nothing
            every_action = set().union(*granted.values())
            if {entry["action"] for entry in listed} != every_action:
                mismatches.append((name, resource_type, listed, every_action))
            for entry in listed:
                holders = {label for label, actions in granted.items() if entry["action"] in actions}
                condition = entry["condition"]
                if condition.startswith("any") and "but their own" not in condition:
                    expected_ok = holders == set(granted)
                elif condition.endswith(" only"):
                    expected_ok = holders == {"own"}
                else:
                    expected_ok = "own" in holders or not condition.startswith(("own", "their own"))
                if not expected_ok:
                    mismatches.append((name, resource_type, entry, sorted(holders)))
    assert not mismatches, mismatches


def test_the_user_review(story):
    body = story.get("/v1/access-review?user=u_partner").json
    assert body["user"] == "u_partner" and body["support_agent"] is False and "on_every_account" not in body
    assert [(a["account"], a["role"]) for a in body["accounts"]] == [(B, "payment_manager"), ("acc_c", "collaborator")]
    on_c = body["accounts"][1]["actions"]
    assert set(on_c["Account"]) == _decided(story, "u_partner", {"type": "Account", "id": "acc_c"})
    support = story.get("/v1/access-review?user=u_support").json
    assert support["support_agent"] is True and support["accounts"] == []
    assert support["on_every_account"]["Subscription"] == ["view"]
    nobody = story.get("/v1/access-review?user=u_nobody").json
    assert nobody["accounts"] == [] and nobody["support_agent"] is False


def test_csv(story):
    answer = story.get(f"/v1/access-review?account={B}&format=csv")
    assert answer.status == 200
    rows = list(csv.reader(io.StringIO(answer.raw.decode())))
    assert rows[0] == ["account", "user", "role", "support_agent", "resource_type", "action", "condition"]
    assert [B, "u_partner", "payment_manager", "false", "PaymentMethod", "delete", "own payment methods only"] in rows
    assert [B, "u_support", "", "true", "Subscription", "view", ""] in rows
    by_user = list(csv.reader(io.StringIO(story.get("/v1/access-review?user=u_support&format=csv").raw.decode())))
    assert by_user[0] == ["user", "account", "role", "resource_type", "action", "condition"]
    assert ["u_support", "*", "", "Subscription", "view", ""] in by_user


def test_csv_cells_never_start_a_formula(api):
    api.create_account("=1+1", "@admin")
    rows = list(csv.reader(io.StringIO(api.get("/v1/access-review?account=%3D1%2B1&format=csv").raw.decode())))
    assert rows[1][:3] == ["'=1+1", "'@admin", "admin"]


@pytest.mark.parametrize(
    "query, status",
    [("", 400), (f"?account={B}&user=u_client", 400), ("?account=a%20b", 400), (f"?account={B}&format=xml", 400),
     ("?account=acc_none", 404), (f"?account={B}&surprise=1", 400)],
)
def test_bad_requests(story, query, status):
    answer = story.get(f"/v1/access-review{query}")
    assert answer.status == status and answer.error_code in ("invalid_request", "account_not_found"), answer


def test_the_audit_scope_is_needed(app, story):
    _, check_key = create_key(app.extensions["authz"].db, "billing", ["check", "write"])
    assert story.with_key(check_key).get(f"/v1/access-review?account={B}").status == 403


def test_authz_access_review(story, database_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database_url)

    def run(*args: str):
        return CliRunner().invoke(main, ["access-review", *args], catch_exceptions=False)

    text = run("--account", B)
    assert text.exit_code == 0 and "u_partner (payment_manager)" in text.output
    assert "PaymentMethod: delete (own payment methods only)" in text.output
    assert json.loads(run("--user", "u_partner", "--json").output)["accounts"][0]["account"] == B
    assert run("--account", B, "--csv").output.startswith("account,user,role,support_agent")
    assert run("--account", "acc_none").exit_code == 2
    assert run().exit_code == 2 and run("--account", B, "--user", "u_1").exit_code == 2


def test_the_audit_page(app, story):
    client = app.test_client()
    assert 'href="/audit/access-review"' in page(client, "/audit/").get_data(as_text=True)
    empty = parse(page(client, "/audit/access-review").get_data(as_text=True))
    assert not empty.find_all("table")
    html = parse(page(client, f"/audit/access-review?account={B}").get_data(as_text=True))
    users = [row.attributes["data-user"] for row in html.find_all("tr") if "data-user" in row.attributes]
    assert users == ["u_client", "u_partner", "u_reader", "u_support"]
    assert "own payment methods only" in html.text
    exported = client.get(f"/audit/access-review?account={B}&format=csv", headers=basic(TEST_KEY))
    assert exported.status_code == 200 and exported.mimetype == "text/csv"
    user_page = parse(page(client, "/audit/access-review?user=u_partner").get_data(as_text=True))
    assert [row.attributes["data-account"] for row in user_page.find_all("tr") if "data-account" in row.attributes] == [
        B, "acc_c",
    ]
    assert client.get("/audit/access-review?account=acc_none", headers=basic(TEST_KEY)).status_code == 404
    assert client.get("/audit/access-review?account=a%20b", headers=basic(TEST_KEY)).status_code == 400
