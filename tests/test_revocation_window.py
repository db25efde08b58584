"""A key revoked while a request is in flight gets nothing committed (SPEC "Strict input", issue 11).

The revocation is made to land at a chosen moment of a write, deterministically:
right after the request's key was authenticated (both databases), or, on
PostgreSQL, right after the write locked the account's row (SQLite's writer holds
the whole file from BEGIN IMMEDIATE, so there no revocation can land inside a write:
its window closes at BEGIN, which the first case covers). Each write answers 401
and the change log holds the revocation and nothing else.
"""

from __future__ import annotations

import threading

import pytest

from models.transactions import Transaction
from service.core.api_keys import create_key, revoke_key
from tests.support import TEST_KEY

WRITES = [
    ("POST", "/v1/accounts", {"id": "acc_new", "name": "New", "admin": "u_9"}),
    ("PATCH", "/v1/accounts/acc_1/billing-settings", {"auto_add_subscription_invoices_to_purchases": False}),
    ("POST", "/v1/accounts/acc_1/members", {"user": "u_3", "role": "reader", "acting_user": "u_1"}),
    ("PATCH", "/v1/accounts/acc_1/members/u_2", {"role": "admin"}),
    ("DELETE", "/v1/accounts/acc_1/members/u_2", None),
    ("PUT", "/v1/support-agents/u_4", None),
    ("DELETE", "/v1/support-agents/u_5", None),
]
ACCOUNT_WRITES = [write for write in WRITES if write[1].startswith("/v1/accounts/acc_1")]


@pytest.fixture
def seeded(app, api):
    api.create_account("acc_1", "u_1")
    assert api.invite("acc_1", "u_2", "reader").status == 201
    assert api.put("/v1/support-agents/u_5").status == 200
    key_id, key = create_key(app.extensions["authz"].db, "in flight", ["write"])
    return api, key_id, key


def _entries_since(api, revision: int) -> list[str]:
    return [entry["kind"] for entry in api.get(f"/v1/changes?after={revision}").json["changes"]]


def _revoke_once(db, key_id: str) -> callable:
    """A function that revokes the key the first time it is called, from another thread (another connection)."""
    done: list[bool] = []

    def revoke() -> None:
        if done:
            return
        done.append(True)
        worker = threading.Thread(target=revoke_key, args=(db, key_id))
        worker.start()
        worker.join(timeout=20)
        assert not worker.is_alive(), "the revocation waited on the write: the test would measure a deadlock"

    return revoke


def _refused_and_nothing_written(api, key: str, method: str, path: str, body) -> None:
    before = api.revision()
    answer = api.with_key(key).call(method, path, body)
    assert answer.status == 401, answer
    assert answer.json["error"]["code"] == "unauthenticated"
    assert "revoked while this request was in flight" in answer.json["error"]["message"]
    assert _entries_since(api, before) == ["api_key.revoke"]


@pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=[f"{m} {p}" for m, p, _b in WRITES])
def test_a_key_revoked_after_authentication_commits_nothing(app, seeded, monkeypatch, method, path, body):
    api, key_id, key = seeded
    keys = app.extensions["authz"].keys
    authenticate = keys.authenticate
    revoke = _revoke_once(app.extensions["authz"].db, key_id)

    def authenticate_then_revoke(presented: str):
        caller = authenticate(presented)
        if caller.key_id == key_id:
            revoke()  # the request goes on with a key that was valid when it was checked
        return caller

    monkeypatch.setattr(keys, "authenticate", authenticate_then_revoke)
    _refused_and_nothing_written(api, key, method, path, body)
    assert api.with_key(key).call(method, path, body).status == 401  # and from then on, at authentication


@pytest.mark.parametrize(("method", "path", "body"), ACCOUNT_WRITES, ids=[f"{m} {p}" for m, p, _b in ACCOUNT_WRITES])
def test_a_key_revoked_after_the_write_locked_its_account_commits_nothing(
    app, database_url, seeded, monkeypatch, method, path, body
):
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite's writer holds the file from BEGIN IMMEDIATE: no revocation can land inside a write")
    api, key_id, key = seeded
    lock_account = Transaction.account
    revoke = _revoke_once(app.extensions["authz"].db, key_id)

    def lock_then_revoke(self, account_id: str, *, lock: bool = False):
        row = lock_account(self, account_id, lock=lock)
        if lock:
            revoke()  # commits on another connection while this write holds the account's row
        return row

    monkeypatch.setattr(Transaction, "account", lock_then_revoke)
    _refused_and_nothing_written(api, key, method, path, body)


@pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=[f"{m} {p}" for m, p, _b in WRITES])
def test_a_key_in_force_writes_and_the_preshared_key_is_not_looked_up(app, seeded, method, path, body):
    api, _key_id, key = seeded
    before = api.revision()
    answer = api.with_key(key).call(method, path, body)
    assert answer.status in (200, 201), answer
    assert len(_entries_since(api, before)) == 1
    assert api.with_key(TEST_KEY).put("/v1/support-agents/u_6").status == 200
