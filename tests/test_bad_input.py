"""Bad input: every malformed request gets a 400 naming the field, in the error shape; nothing is written."""

from __future__ import annotations

import pytest

from tests.support import account, user

A = "acc_1"
CARD = {"type": "PaymentMethod", "id": "pm", "account": A, "owner": "u_1"}
GOOD_CHECK = {"actor": user("u_1"), "action": "read", "resource": account(A)}

CASES = [
    # (method, path, body or raw bytes, words the message must contain)
    ("POST", "/v1/authorize", b"{not json", "not valid JSON"),
    ("POST", "/v1/authorize", b"[1, 2]", "body"),
    ("POST", "/v1/authorize", b'"just a string"', "body"),
    ("POST", "/v1/authorize", b"", "actor"),
    ("POST", "/v1/authorize", b"\xff\xfe", "not valid JSON"),
    ("POST", "/v1/authorize", {**GOOD_CHECK, "actor": "u_1"}, "actor"),
    ("POST", "/v1/authorize", {**GOOD_CHECK, "actor": {"type": "Robot", "id": "r"}}, "actor.type"),
    ("POST", "/v1/authorize", {**GOOD_CHECK, "actor": {"type": "User"}}, "actor.id"),
    ("POST", "/v1/authorize", {**GOOD_CHECK, "actor": {"type": "User", "id": ""}}, "actor.id"),
    ("POST", "/v1/authorize", {**GOOD_CHECK, "actor": {"type": "User", "id": 42}}, "actor.id"),
    ("POST", "/v1/authorize", {**GOOD_CHECK, "actor": {"type": "User", "id": "x" * 201}}, "actor.id"),
    ("POST", "/v1/authorize", {**GOOD_CHECK, "actor": {"type": "User", "id": "a\x00b"}}, "actor.id"),
    ("POST", "/v1/authorize", {**GOOD_CHECK, "actor": {"type": "User", "id": "u_1\n"}}, "actor.id"),
    ("POST", "/v1/authorize", {**GOOD_CHECK, "action": "read\n"}, "action"),
    ("POST", "/v1/authorize", {**GOOD_CHECK, "action": 7}, "action"),
    ("POST", "/v1/authorize", {**GOOD_CHECK, "action": "fly"}, "unknown action"),
    ("POST", "/v1/authorize", {**GOOD_CHECK, "resource": {"type": "Spaceship", "id": "s"}}, "resource.type"),
    ("POST", "/v1/authorize", {**GOOD_CHECK, "resource": {"id": A}}, "resource.type"),
    ("POST", "/v1/authorize", {**GOOD_CHECK, "resource": {"type": [], "id": A}}, "resource.type"),
    ("POST", "/v1/authorize/batch", {"checks": [{**GOOD_CHECK, "resource": {"type": {}, "id": A}}]}, "resource.type"),
    ("POST", "/v1/authorize", {**GOOD_CHECK, "resource": "acc_1"}, "resource"),
    ("POST", "/v1/authorize", {**GOOD_CHECK, "resource": {"type": "Account"}}, "resource.id"),
    ("POST", "/v1/authorize", {**GOOD_CHECK, "resource": {"type": "Account", "id": A, "color": "red"}}, "resource.color"),
    ("POST", "/v1/authorize", {**GOOD_CHECK, "action": "view", "resource": {k: v for k, v in CARD.items() if k != "owner"}}, "resource.owner"),
    ("POST", "/v1/authorize", {**GOOD_CHECK, "action": "view", "resource": {**CARD, "owner": None}}, "resource.owner"),
    ("POST", "/v1/authorize", {**GOOD_CHECK, "action": "remove", "resource": {"type": "Membership", "account": A}}, "resource.user"),
    ("POST", "/v1/authorize", {**GOOD_CHECK, "action": "view", "resource": {"type": "Document", "id": "d"}}, "resource.account"),
    ("POST", "/v1/authorize", {**GOOD_CHECK, "explain": "yes"}, "explain"),
    ("POST", "/v1/authorize", {**GOOD_CHECK, "at_least_revision": "3"}, "at_least_revision"),
    ("POST", "/v1/authorize", {**GOOD_CHECK, "at_least_revision": -1}, "at_least_revision"),
    ("POST", "/v1/authorize", {**GOOD_CHECK, "at_least_revision": 1.5}, "at_least_revision"),
    ("POST", "/v1/authorize", {**GOOD_CHECK, "at_least_revision": True}, "at_least_revision"),
    ("POST", "/v1/authorize", {**GOOD_CHECK, "extra": 1}, "extra"),
    ("POST", "/v1/authorize/batch", {}, "checks"),
    ("POST", "/v1/authorize/batch", {"checks": GOOD_CHECK}, "checks"),
    ("POST", "/v1/authorize/batch", {"checks": [GOOD_CHECK] * 1001}, "checks"),
    ("POST", "/v1/authorize/batch", {"checks": [GOOD_CHECK, {**GOOD_CHECK, "resource": {"type": "Account"}}]}, "checks.1.resource.id"),
    ("POST", "/v1/authorize/batch", {"checks": [GOOD_CHECK, {**GOOD_CHECK, "action": "fly"}]}, "checks.1.action"),
    ("POST", "/v1/actions", {"actor": user("u_1")}, "resource"),
    ("POST", "/v1/actions", {"actor": user("u_1"), "resource": CARD, "action": "view"}, "action"),
    ("POST", "/v1/list", {"actor": user("u_1"), "action": "read"}, "resource_type"),
    ("POST", "/v1/list", {"actor": user("u_1"), "action": "read", "resource_type": "Planet"}, "resource_type"),
    ("POST", "/v1/list", {"actor": user("u_1"), "action": "fly", "resource_type": "Account"}, "unknown action"),
    ("POST", "/v1/list", {"actor": user("u_1"), "action": "read", "resource_type": "Account", "page_size": 0}, "page_size"),
    ("POST", "/v1/list", {"actor": user("u_1"), "action": "read", "resource_type": "Account", "page_size": 10001}, "page_size"),
    ("POST", "/v1/list", {"actor": user("u_1"), "action": "read", "resource_type": "Account", "page_token": "garbage!"}, "page_token"),
    ("POST", "/v1/accounts", {"id": "acc_2", "name": "Two"}, "admin"),
    ("POST", "/v1/accounts", {"id": "acc_2", "name": "", "admin": "u_1"}, "name"),
    ("POST", "/v1/accounts", {"id": ["acc_2"], "name": "Two", "admin": "u_1"}, "id"),
    ("POST", "/v1/accounts", {"id": "acc/2", "name": "Two", "admin": "u_1"}, "id"),
    ("POST", f"/v1/accounts/{A}/members", {"user": "u/2", "role": "reader"}, "user"),
    ("POST", "/v1/accounts", {"id": "acc_2", "name": "Two", "admin": "u_1", "acting_user": "u_1"}, "acting_user"),
    ("PATCH", f"/v1/accounts/{A}/billing-settings", {}, "restrict_subscription_to_payment_manager"),
    ("PATCH", f"/v1/accounts/{A}/billing-settings", {"acting_user": "u_1"}, "restrict_subscription_to_payment_manager"),
    ("PATCH", f"/v1/accounts/{A}/billing-settings", {"restrict_subscription_to_payment_manager": "true"}, "restrict_subscription_to_payment_manager"),
    ("PATCH", f"/v1/accounts/{A}/billing-settings", {"auto_add_subscription_invoices_to_purchases": 0}, "auto_add_subscription_invoices_to_purchases"),
    ("PATCH", f"/v1/accounts/{A}/billing-settings", {"auto_add_subscription_invoices_to_purchases": None}, "auto_add_subscription_invoices_to_purchases"),
    ("POST", f"/v1/accounts/{A}/members", {"user": "u_2"}, "role"),
    ("POST", f"/v1/accounts/{A}/members", {"user": "u_2", "role": "owner"}, "role"),
    ("POST", f"/v1/accounts/{A}/members", {"user": "u_2", "role": "support"}, "role"),
    ("POST", f"/v1/accounts/{A}/members", {"user": "u_2", "role": "reader", "acting_user": ""}, "acting_user"),
    ("PATCH", f"/v1/accounts/{A}/members/u_1", {}, "role"),
    ("PATCH", f"/v1/accounts/{A}/members/u_1", {"role": "superadmin"}, "role"),
    ("DELETE", f"/v1/accounts/{A}/members/u_1?acting_user=", None, "acting_user"),
    ("DELETE", f"/v1/accounts/{A}/members/u_1?colour=red", None, "colour"),
    ("PUT", "/v1/support-agents/" + "x" * 201, None, "user"),
    ("PUT", "/v1/support-agents/u_s", {"acting_user": "u_1"}, "acting_user"),
    ("GET", "/v1/changes?after=minus", None, "after"),
    ("GET", "/v1/changes?after=-1", None, "after"),
    ("GET", "/v1/changes?after=178294160745524494336", None, "after"),
    ("POST", "/v1/authorize", {**GOOD_CHECK, "at_least_revision": 2**64}, "at_least_revision"),
    ("POST", "/v1/authorize", {**GOOD_CHECK, "as_of_revision": 2**64}, "as_of_revision"),
    ("GET", "/v1/changes?limit=0", None, "limit"),
    ("GET", "/v1/changes?limit=100000", None, "limit"),
    ("GET", f"/v1/accounts/{A}?acting_user=" + "u" * 300, None, "acting_user"),
]


@pytest.fixture
def seeded(api):
    api.create_account(A, "u_1")
    return api


@pytest.mark.parametrize(("method", "path", "body", "words"), CASES, ids=[f"{c[0]} {c[1][:40]} {c[3]}" for c in CASES])
def test_bad_input_is_a_400_naming_the_field_and_writes_nothing(seeded, method, path, body, words):
    before = seeded.revision()
    if isinstance(body, bytes):
        answer = seeded.call(method, path, raw=body)
    else:
        answer = seeded.call(method, path, body)
    assert answer.status == 400, answer
    error = answer.json["error"]
    assert set(error) == {"code", "message"} and error["code"]
    assert words in error["message"], error["message"]
    assert seeded.revision() == before


def test_a_body_over_the_limit_is_refused(seeded):
    answer = seeded.call("POST", "/v1/authorize", raw=b'{"x": "' + b"a" * 1_100_000 + b'"}')
    assert answer.status == 413
    assert answer.json["error"]["code"]


def test_unknown_paths_and_methods_answer_in_the_error_shape(seeded):
    missing = seeded.get("/v1/nothing-here")
    assert missing.status == 404 and missing.json["error"]["code"] == "not_found"
    wrong = seeded.call("GET", "/v1/authorize")
    assert wrong.status == 405 and "error" in wrong.json
