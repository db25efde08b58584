"""Operations: readiness, metrics, the OpenAPI document, the policy text."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tests.support import account, user

POLICY = Path(__file__).resolve().parent.parent / "policy.polar"


def test_readyz_reports_revision_and_policy(api):
    base = api.revision()
    api.create_account("acc_1", "u_1")
    ready = api.get("/readyz").json
    assert ready["status"] == "ready" and ready["revision"] == base + 1
    assert ready["policy"] == hashlib.sha256(POLICY.read_bytes()).hexdigest()


def test_the_policy_endpoint_serves_the_file_and_its_sha256(api):
    answer = api.get("/v1/policy").json
    assert answer["text"] == POLICY.read_text()
    assert answer["sha256"] == hashlib.sha256(POLICY.read_bytes()).hexdigest()


def test_metrics_count_requests_and_decisions(api):
    api.post("/v1/authorize", {"actor": user("u_1"), "action": "read", "resource": account("a")})
    text = api.get("/metrics").raw.decode()
    assert 'authz_requests_total{endpoint="/v1/authorize",status="200"}' in text
    assert "authz_request_duration_seconds_bucket" in text
    assert 'authz_decisions_total{allowed="false"}' in text


def test_openapi_describes_every_endpoint(app, api):
    document = api.get("/openapi.json").json
    assert document["openapi"].startswith("3.")
    served = {
        (rule.rule, method)
        for rule in app.url_map.iter_rules()
        for method in rule.methods - {"HEAD", "OPTIONS"}
        if rule.endpoint != "static" and not rule.rule.startswith("/audit")  # HTML pages, not the JSON API
    }
    described = {
        (path.replace("{", "<").replace("}", ">"), method.upper())
        for path, operations in document["paths"].items()
        for method in operations
    }
    assert served - {("/metrics", "GET"), ("/openapi.json", "GET")} <= described
    authorize = document["paths"]["/v1/authorize"]["post"]
    assert {"200", "400", "401", "403", "503"} <= set(authorize["responses"])
    checks = document["components"]["schemas"]["Check"]["oneOf"]
    assert len(checks) == 6  # one per resource type, each with its own actions
    account_check = document["components"]["schemas"]["AccountCheck"]
    assert "view_subscription" in account_check["properties"]["action"]["enum"]
    assert "view_prices" not in account_check["properties"]["action"]["enum"]
    card = document["components"]["schemas"]["PaymentMethodRef"]
    assert set(card["required"]) == {"type", "id", "account", "owner"}
