"""The key ids a process remembers as unknown are bounded (issue 11: 20,000 random 8 KB keys once kept 153 MB).

Each worker remembers presented key ids that are not stored, so a caller retrying a wrong
key costs no read each time; at most MAX_UNKNOWN_KEY_IDS of them, the least recently
presented forgotten first. A presented key whose id cannot be a stored key's is refused
without a lookup and leaves nothing behind. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import secrets
import time

import pytest

from models.fact_cache import MAX_UNKNOWN_KEY_IDS
from service.core.api_keys import create_key
from service.core.errors import Unauthenticated


def _refused(keys, presented: str) -> None:
    with pytest.raises(Unauthenticated):
        keys.authenticate(presented)


def test_twenty_thousand_random_keys_leave_the_cache_at_its_bound(app):
    runtime = app.extensions["authz"]
    _id, good = create_key(runtime.db, "the one in use", ["check"])
    runtime.keys.authenticate(good)
    for _ in range(20_000):
        _refused(runtime.keys, f"authz_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}")
    assert len(runtime.cache._unknown_keys) == MAX_UNKNOWN_KEY_IDS
    assert len(runtime.cache._keys) == 1  # the stored key, still remembered
    assert runtime.keys.authenticate(good).scopes == frozenset({"check"})


def test_random_eight_kilobyte_keys_are_refused_without_being_remembered(app):
    runtime = app.extensions["authz"]
    for _ in range(2_000):
        _refused(runtime.keys, f"authz_{secrets.token_hex(4_000)}_secret")  # an id of 8,000 characters
        _refused(runtime.keys, f"authz_{secrets.token_hex(6)}/{secrets.token_hex(8)}_secret")  # not an id's letters
        _refused(runtime.keys, secrets.token_urlsafe(6_000))  # not even our prefix
    assert len(runtime.cache._unknown_keys) == 0


def test_the_least_recently_presented_unknown_id_is_forgotten_first(app):
    runtime = app.extensions["authz"]
    ids = [f"{number:012x}" for number in range(MAX_UNKNOWN_KEY_IDS)]
    for key_id in ids:
        _refused(runtime.keys, f"authz_{key_id}_secret")
    _refused(runtime.keys, f"authz_{ids[0]}_secret")  # presented again: now the most recent
    _refused(runtime.keys, "authz_ffffffffffff_secret")
    remembered = runtime.cache._unknown_keys
    assert len(remembered) == MAX_UNKNOWN_KEY_IDS
    assert ids[0] in remembered and ids[1] not in remembered and "ffffffffffff" in remembered


def test_an_id_remembered_as_unknown_is_accepted_once_a_key_of_that_id_is_created(app, monkeypatch):
    runtime = app.extensions["authz"]
    _refused(runtime.keys, "authz_0123456789ab_anything")
    assert "0123456789ab" in runtime.cache._unknown_keys
    monkeypatch.setattr(secrets, "token_hex", lambda _size: "0123456789ab")
    key_id, key = create_key(runtime.db, "created later", ["write"])
    assert key_id == "0123456789ab"
    deadline = time.monotonic() + 10  # as for a revocation: from the revision that created it on, once it is seen
    while True:
        try:
            assert runtime.keys.authenticate(key).key_id == key_id
            return
        except Unauthenticated:
            assert time.monotonic() < deadline, "a key created after its id was presented stays refused"
            time.sleep(0.05)
