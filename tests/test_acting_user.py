"""`acting_user` is never ignored, and no query parameter is either (SPEC, "Strict input").

A write made for a person takes `acting_user` in the body or in the query string; given in
both, they must name the same person. Where no person can act (sign-up, support agents) it
is refused. Every declared endpoint refuses a query parameter it does not take, or one given
twice. Each row below starts from the same account and checks, for a refusal, that nothing
changed: the account as read back, and the change log.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

import pytest

import service.app  # noqa: F401  (declares every endpoint)
from service.http.declare import ENDPOINTS
from tests.support import account, user

A = "acc"
READER = "u_reader"  # holds no permission that any of these writes needs


@dataclass(frozen=True)
class Write:
    """A write made for a person: what it sends besides `acting_user`, and who may make it."""

    name: str
    method: str
    path: str
    body: dict
    allowed: str
    status: int
    kind: str  # its change-log entry

    def send(self, api, body_user: str | None = None, query_user: str | None = None):
        body = {**self.body, **({"acting_user": body_user} if body_user else {})}
        query = "?" + urlencode({"acting_user": query_user}) if query_user else ""
        return api.call(self.method, self.path + query, body or None)  # DELETE without acting_user: no body


WRITES = [
    Write("invite an admin", "POST", f"/v1/accounts/{A}/members", {"user": "u_new", "role": "admin"},
          "u_admin", 201, "member.invite"),
    Write("change a role", "PATCH", f"/v1/accounts/{A}/members/u_victim", {"role": "admin"},
          "u_admin", 200, "member.change_role"),
    Write("remove a member", "DELETE", f"/v1/accounts/{A}/members/u_victim", {},
          "u_admin", 200, "member.remove"),
    Write("change billing settings", "PATCH", f"/v1/accounts/{A}/billing-settings",
          {"auto_add_subscription_invoices_to_purchases": False}, "u_pm", 200, "billing_settings.update"),
]

# (write, acting_user in the body, in the query string, expected status)
TABLE = [
    row
    for write in WRITES
    for who, expected in [(READER, 403), (write.allowed, write.status)]
    for row in [(write, who, None, expected), (write, None, who, expected), (write, who, who, expected)]
] + [
    row
    for write in WRITES
    for row in [(write, READER, write.allowed, 400), (write, write.allowed, READER, 400)]
]


def _row_id(row: tuple) -> str:
    write, in_body, in_query, expected = row
    return f"{write.name}: body={in_body} query={in_query} -> {expected}"


@pytest.fixture
def seeded(api):
    """acc: u_admin admin, u_reader reader, u_victim collaborator, u_pm payment manager."""
    api.create_account(A, "u_admin")
    for member, role in [("u_reader", "reader"), ("u_victim", "collaborator"), ("u_pm", "payment_manager")]:
        assert api.invite(A, member, role, acting_user="u_admin").status == 201
    return api


def facts_and_log(api) -> tuple[dict, list]:
    """What a refused write must leave as it was: the account (settings, members, revision) and its change log."""
    return api.get(f"/v1/accounts/{A}").json, api.get(f"/v1/changes?account={A}").json["changes"]


@pytest.mark.parametrize(("write", "in_body", "in_query", "expected"), TABLE, ids=[_row_id(row) for row in TABLE])
def test_a_write_is_checked_for_its_acting_user_wherever_it_is_given(seeded, write, in_body, in_query, expected):
    before = facts_and_log(seeded)
    answer = write.send(seeded, in_body, in_query)
    assert answer.status == expected, answer
    if expected == write.status:
        entry = seeded.get(f"/v1/changes?after={answer.json['revision'] - 1}").json["changes"][0]
        assert (entry["kind"], entry["acting_user"]) == (write.kind, in_body or in_query), entry
        return
    assert answer.error_code == ("forbidden" if expected == 403 else "acting_user_conflict"), answer
    if expected == 400:
        assert "acting_user" in answer.json["error"]["message"]
    assert facts_and_log(seeded) == before


# The holes as they were reported, sent literally: each was answered 200 (or ignored a parameter) before.
ATTACKS = [
    # DELETE read acting_user only from the query string: a body naming a reader made a trusted system removal.
    ("DELETE", f"/v1/accounts/{A}/members/u_victim", {"acting_user": READER}, 403, "forbidden"),
    # PATCH and POST read it only from the body: a reader in the query string changed settings, invited an admin.
    ("PATCH", f"/v1/accounts/{A}/billing-settings?acting_user={READER}",
     {"restrict_subscription_to_payment_manager": True}, 403, "forbidden"),
    ("POST", f"/v1/accounts/{A}/members?acting_user={READER}", {"user": "u_accomplice", "role": "admin"}, 403, "forbidden"),
    # A repeated parameter was reduced to its first value.
    ("DELETE", f"/v1/accounts/{A}/members/u_victim?acting_user=u_admin&acting_user={READER}", None, 400, "invalid_request"),
    # An unknown query parameter was dropped, and with it the freshness guarantee.
    ("POST", "/v1/authorize?at_least_revision=999999",
     {"actor": user(READER), "action": "read", "resource": account(A)}, 400, "invalid_request"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "code"), ATTACKS, ids=[f"{a[0]} {a[1]}" for a in ATTACKS])
def test_the_reported_attacks_are_refused_and_change_nothing(seeded, method, path, body, status, code):
    before = facts_and_log(seeded)
    answer = seeded.call(method, path, body)
    assert (answer.status, answer.error_code) == (status, code), answer
    assert facts_and_log(seeded) == before


def test_removing_a_member_takes_no_body_an_empty_one_or_acting_user(seeded):
    removal = WRITES[2]
    for raw in [b"", b"{}"]:
        refused = seeded.call("DELETE", f"/v1/accounts/{A}/members/u_victim?acting_user={READER}", raw=raw)
        assert refused.status == 403, (raw, refused)
    assert removal.send(seeded).status == 200  # no acting_user anywhere: a trusted system change
    entry = seeded.get(f"/v1/changes?account={A}").json["changes"][-1]
    assert (entry["kind"], entry["acting_user"]) == ("member.remove", None)


# Where no person can act, acting_user is an unknown field, in the body as in the query string.
SYSTEM_WRITES = [
    ("POST", "/v1/accounts", {"id": "acc_new", "name": "New", "admin": "u_new"}),
    ("PUT", "/v1/support-agents/u_new_agent", {}),
    ("DELETE", "/v1/support-agents/u_agent", {}),
]


@pytest.mark.parametrize("place", ["body", "query", "both"])
@pytest.mark.parametrize(("method", "path", "body"), SYSTEM_WRITES, ids=[f"{w[0]} {w[1]}" for w in SYSTEM_WRITES])
def test_acting_user_is_refused_where_no_person_acts(seeded, method, path, body, place):
    assert seeded.put("/v1/support-agents/u_agent").status == 200
    before = seeded.revision()
    if place in ("body", "both"):
        body = {**body, "acting_user": "u_admin"}
    if place in ("query", "both"):
        path += "?acting_user=u_admin"
    answer = seeded.call(method, path, body)
    assert answer.status == 400 and answer.error_code == "invalid_request", answer
    assert "acting_user" in answer.json["error"]["message"]
    assert seeded.revision() == before


def _concrete(rule: str) -> str:
    return rule.replace("<account_id>", "acc_1").replace("<user>", "u_1")


@pytest.mark.parametrize("declared", ENDPOINTS, ids=lambda e: f"{e.method} {e.rule}")
def test_every_endpoint_refuses_an_unknown_query_parameter(api, declared):
    before = api.revision()
    answer = api.call(declared.method, _concrete(declared.rule) + "?surprise=1", {} if declared.body else None)
    assert answer.status == 400 and answer.error_code == "invalid_request", answer
    assert "surprise" in answer.json["error"]["message"]
    assert api.revision() == before


VALID_QUERY_VALUES = {
    "acting_user": "u_1", "account": "acc_1", "after": "0", "limit": "10",
    "actor": "u_1", "action": "read", "allowed": "true", "since": "2026-12-01", "until": "2026-12-02",  # /v1/decisions
    "user": "u_1", "format": "json",  # /v1/access-review
}


@pytest.mark.parametrize(
    "declared", [e for e in ENDPOINTS if e.query.fields], ids=lambda e: f"{e.method} {e.rule}"
)
def test_every_query_parameter_is_refused_when_repeated(api, declared):
    before = api.revision()
    for name in declared.query.fields:
        value = VALID_QUERY_VALUES[name]
        path = f"{_concrete(declared.rule)}?{name}={value}&{name}={value}"  # even the same value twice
        answer = api.call(declared.method, path, {} if declared.body else None)
        assert answer.status == 400 and answer.error_code == "invalid_request", (name, answer)
        assert f"{name}: given more than once" in answer.json["error"]["message"]
    assert api.revision() == before


def test_the_openapi_document_states_where_acting_user_goes(api):
    document = api.get("/openapi.json").json
    schemas = document["components"]["schemas"]

    def operation(write_method: str, rule: str) -> dict:
        return document["paths"][rule][write_method.lower()]

    def query_names(found: dict) -> set[str]:
        return {p["name"] for p in found.get("parameters", []) if p["in"] == "query"}

    def body_fields(found: dict) -> set[str]:
        reference = found["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        body = schemas[reference.rsplit("/", 1)[1]]
        variants = body.get("oneOf", [body])
        return set().union(*(set(v.get("properties", {})) for v in variants))

    for method, rule in [
        ("POST", "/v1/accounts/{account_id}/members"),
        ("PATCH", "/v1/accounts/{account_id}/members/{user}"),
        ("DELETE", "/v1/accounts/{account_id}/members/{user}"),
        ("PATCH", "/v1/accounts/{account_id}/billing-settings"),
    ]:
        found = operation(method, rule)
        assert "acting_user" in query_names(found) and "acting_user" in body_fields(found), (method, rule)
    assert operation("DELETE", "/v1/accounts/{account_id}/members/{user}")["requestBody"]["required"] is False
    for method, rule in [("POST", "/v1/accounts"), ("PUT", "/v1/support-agents/{user}"),
                         ("DELETE", "/v1/support-agents/{user}")]:
        found = operation(method, rule)
        assert "acting_user" not in query_names(found) | body_fields(found), (method, rule)
