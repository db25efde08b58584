"""Security review, as tests: every endpoint needs its scope, limits hold, logs hold no keys or ids."""

from __future__ import annotations

import io
import json
import logging
import os
import re

import pytest

import service.app  # noqa: F401  (declares every endpoint)
from service.core.api_keys import KEY_PREFIX, create_key
from service.http.declare import ENDPOINTS
from service.http.logs import JsonFormatter
from tests.support import TEST_KEY, account, user


def _concrete(rule: str) -> str:
    return rule.replace("<account_id>", "acc_1").replace("<user>", "u_1")


@pytest.mark.parametrize("declared", [e for e in ENDPOINTS if e.scope], ids=lambda e: f"{e.method} {e.rule}")
def test_every_v1_endpoint_needs_a_key_and_its_scope(app, api, declared):
    anonymous = api.with_key(None).call(declared.method, _concrete(declared.rule), {} if declared.body else None)
    assert anonymous.status == 401, anonymous
    if declared.scope == "any":
        return
    db = app.extensions["authz"].db
    wanted = declared.scope if isinstance(declared.scope, tuple) else (declared.scope,)
    others = [scope for scope in ("check", "write", "audit", "admin") if scope not in wanted]
    _id, key = create_key(db, "other scopes", others)
    refused = api.with_key(key).call(declared.method, _concrete(declared.rule), {} if declared.body else None)
    assert refused.status == 403 and refused.error_code == "missing_scope", refused


def test_a_request_id_is_echoed_or_made(app):
    client = app.test_client()
    made = client.get("/healthz").headers["X-Request-Id"]
    assert len(made) == 32
    assert client.get("/healthz", headers={"X-Request-Id": "caller-123"}).headers["X-Request-Id"] == "caller-123"
    assert client.get("/healthz", headers={"X-Request-Id": "bad id;x"}).headers["X-Request-Id"] != "bad id;x"
    failing = client.post(
        "/v1/authorize", data="{", headers={"Authorization": f"Bearer {TEST_KEY}", "Content-Type": "application/json"}
    )
    assert failing.status_code == 400 and len(failing.headers["X-Request-Id"]) == 32


def test_made_request_ids_never_repeat_not_even_in_a_forked_worker(app):
    """Made ids are a per-process random prefix and a counter: a fork draws its own prefix."""
    client = app.test_client()
    made = [client.get("/healthz").headers["X-Request-Id"] for _ in range(50)]
    assert len(set(made)) == 50 and all(re.fullmatch(r"[0-9a-f]{32}", made_id) for made_id in made)
    reading, writing = os.pipe()
    child = os.fork()
    if child == 0:  # the child answers one request and reports its id
        try:
            os.write(writing, app.test_client().get("/healthz").headers["X-Request-Id"].encode())
        finally:
            os._exit(0)
    os.close(writing)
    os.waitpid(child, 0)
    in_child = os.read(reading, 64).decode()
    os.close(reading)
    after = client.get("/healthz").headers["X-Request-Id"]
    assert len(in_child) == 32 and in_child not in made and in_child != after
    assert in_child[:16] != made[0][:16] and after[:16] == made[0][:16]


def test_logs_are_json_without_keys_or_ids(app, api):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("authz.requests")
    logger.addHandler(handler)
    try:
        api.create_account("acc_secret_customer", "u_secret_person")
        api.post("/v1/authorize", {"actor": user("u_secret_person"), "action": "read", "resource": account("acc_secret_customer")})
        api.get("/v1/accounts/acc_secret_customer/members?acting_user=u_secret_person")
        api.with_key("authz_wrong_secretvalue").get("/v1/changes")
    finally:
        logger.removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 4
    assert {line["route"] for line in lines} >= {"/v1/authorize", "/v1/accounts/<account_id>/members"}
    assert all(line["request_id"] and line["duration_ms"] >= 0 for line in lines)
    text = stream.getvalue()
    for secret in ["secret_customer", "secret_person", TEST_KEY, "secretvalue"]:
        assert secret not in text


def test_only_hashes_of_keys_are_stored(app):
    from sqlalchemy import text

    db = app.extensions["authz"].db
    key_id, key = create_key(db, "svc", ["check"])
    secret = key.removeprefix(f"{KEY_PREFIX}{key_id}_")  # the secret may itself hold "_" (URL-safe base64)
    assert len(secret) >= 40
    with db.engine.connect() as connection:
        dump = " ".join(str(row) for row in connection.execute(text("SELECT * FROM api_keys")))
        log_dump = " ".join(str(row) for row in connection.execute(text("SELECT * FROM changes")))
    assert secret not in dump and secret not in log_dump
