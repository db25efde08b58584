"""API keys: preshared, created and stored hashed, scopes, revocation."""

from __future__ import annotations

import time

from sqlalchemy import select

from models.tables import ApiKeyRow
from service.core.api_keys import create_key, revoke_key
from tests.support import TEST_KEY, account, user

CHECK = {"actor": user("u_1"), "action": "read", "resource": account("acc_1")}


def test_no_key_or_a_bad_key_is_401(api):
    for key in [None, "wrong", "authz_abc_def", ""]:
        answer = api.with_key(key).post("/v1/authorize", CHECK)
        assert answer.status == 401, key
        assert answer.json["error"]["code"] == "unauthenticated"
    basic = api.with_key(None).post("/v1/authorize", CHECK, headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert basic.status == 401
    lower = api.with_key(None).post("/v1/authorize", CHECK, headers={"Authorization": f"bearer {TEST_KEY}"})
    assert lower.status == 200


def test_created_keys_are_stored_hashed_and_scoped(app, api):
    db = app.extensions["authz"].db
    check_id, check_key = create_key(db, "web front end", ["check"])
    write_id, write_key = create_key(db, "billing", ["write"])
    with db.read() as session:
        stored = {k.id: k for k in session.execute(select(ApiKeyRow)).scalars()}
    assert check_key.split("_")[-1] not in stored[check_id].secret_sha256
    assert stored[check_id].scopes == "check" and stored[write_id].scopes == "write"

    checker, writer = api.with_key(check_key), api.with_key(write_key)
    assert checker.post("/v1/authorize", CHECK).status == 200
    denied = checker.post("/v1/accounts", {"id": "acc_1", "name": "One", "admin": "u_1"})
    assert denied.status == 403 and denied.json["error"]["code"] == "missing_scope"
    assert writer.post("/v1/accounts", {"id": "acc_1", "name": "One", "admin": "u_1"}).status == 201
    assert writer.post("/v1/authorize", CHECK).status == 403
    assert checker.get("/v1/policy").status == 200 and writer.get("/v1/policy").status == 200
    # The change log names the key that asked.
    entry = api.get("/v1/changes?account=acc_1").json["changes"][0]
    assert entry["api_key"] == write_id

    # A key whose secret is altered is refused, as is a revoked key, from the next request on.
    assert api.with_key(check_key[:-2] + "xx").post("/v1/authorize", CHECK).status == 401
    revoke_key(db, check_id)
    # Revoked elsewhere (here: not through this app), it is refused once the change reaches the process.
    deadline = time.monotonic() + 2
    while checker.post("/v1/authorize", CHECK).status != 401:
        assert time.monotonic() < deadline, "the revoked key is still accepted after 2 s"
        time.sleep(0.02)
    assert writer.post("/v1/authorize/batch", {"checks": []}).status == 403


def test_operations_endpoints_need_no_key(api):
    anonymous = api.with_key(None)
    assert anonymous.get("/healthz").json == {"status": "ok"}
    assert anonymous.get("/readyz").status == 200
    assert anonymous.get("/metrics").status == 200
    assert anonymous.get("/openapi.json").status == 200
    assert anonymous.get("/v1/policy").status == 401
