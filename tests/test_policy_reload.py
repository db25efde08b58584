"""Policy reload: validated before it serves, recorded in the change log, followed by every worker."""

from __future__ import annotations

import os
import re
import signal
import time

import pytest
import requests

from policies.engine import DEFAULT_POLICY_PATH, load_policy
from service.app import create_app
from tests.servers import MASTER_PIDS, running_server
from tests.support import TEST_KEY, Api, account, flask_transport, http_transport, user

ORIGINAL = DEFAULT_POLICY_PATH.read_text()
# A change the scenarios accept: collaborators may also see the member list.
WIDER = ORIGINAL.replace('  "view_members" if "admin";', '  "view_members" if "admin";\n  "view_members" if "collaborator";')
# A change the scenarios refuse: readers may no longer see the workspace.
NARROWER = ORIGINAL.replace('  "view_workspace" if "reader";\n', "")
UNPARSABLE = ORIGINAL + "\nallow(actor, action, resource) if"


@pytest.fixture
def policy_file(tmp_path):
    path = tmp_path / "policy.polar"
    path.write_text(ORIGINAL)
    return path


@pytest.fixture
def reloadable(database_url, policy_file):
    app = create_app(
        {"DATABASE_URL": database_url, "AUTHZ_PRESHARED_KEY": TEST_KEY, "MIGRATE": False, "AUTHZ_POLICY": str(policy_file)}
    )
    api = Api(flask_transport(app.test_client()))
    api.create_account("acc_1", "u_admin")
    api.invite("acc_1", "u_collab", "collaborator")
    yield api
    app.extensions["authz"].close()


def reload(api: Api):
    return api.post("/v1/policy/reload", {})


def test_a_valid_policy_replaces_the_one_in_force(reloadable, policy_file):
    before = reloadable.get("/v1/policy").json["sha256"]
    assert not reloadable.allowed("u_collab", "view_members", account("acc_1"))
    policy_file.write_text(WIDER)
    answer = reload(reloadable)
    assert answer.status == 200, answer
    assert answer.json["sha256"] == load_policy(policy_file).sha256 != before
    assert reloadable.get("/v1/policy").json["text"] == WIDER
    decision = reloadable.post(
        "/v1/authorize",
        {"actor": user("u_collab"), "action": "view_members", "resource": account("acc_1"),
         "at_least_revision": answer.json["revision"]},
    ).json
    assert decision["allowed"] is True and decision["policy"] == answer.json["sha256"]
    entry = reloadable.get(f"/v1/changes?after={answer.json['revision'] - 1}").json["changes"][0]
    assert entry["kind"] == "policy.load" and entry["after"]["sha256"] == answer.json["sha256"]
    assert entry["before"]["sha256"] == before
    assert reload(reloadable).json["revision"] is None  # already in force: nothing recorded


@pytest.mark.parametrize(("text", "words"), [(NARROWER, "fails the scenarios"), (UNPARSABLE, "does not load")])
def test_an_invalid_policy_is_refused_and_the_old_one_keeps_serving(reloadable, policy_file, text, words):
    before = reloadable.get("/v1/policy").json["sha256"]
    revision = reloadable.revision()
    policy_file.write_text(text)
    answer = reload(reloadable)
    assert answer.status == 409 and answer.error_code == "policy_rejected"
    assert words in answer.json["error"]["message"]
    if text is NARROWER:
        message = answer.json["error"]["message"]
        assert "FAIL  " in message and re.search(r"\d+ of \d+ scenarios pass", message)
    assert reloadable.get("/v1/policy").json["sha256"] == before
    assert reloadable.revision() == revision
    assert reloadable.allowed("u_admin", "view_workspace", account("acc_1"))


def test_time_travel_uses_the_policy_in_force_at_the_time(reloadable, policy_file):
    old = reloadable.revision()
    policy_file.write_text(WIDER)
    new = reload(reloadable).json["revision"]
    ask = {"actor": user("u_collab"), "action": "view_members", "resource": account("acc_1")}
    then = reloadable.post("/v1/authorize", {**ask, "as_of_revision": old}).json
    now = reloadable.post("/v1/authorize", {**ask, "as_of_revision": new}).json
    assert (then["allowed"], now["allowed"]) == (False, True)
    assert then["policy"] != now["policy"]


def test_reloading_needs_the_admin_scope(reloadable, database_url):
    from models.database import Database
    from service.core.api_keys import create_key

    _id, key = create_key(Database(database_url), "writer", ["check", "write", "audit"])
    assert reloadable.with_key(key).post("/v1/policy/reload", {}).status == 403


def test_sighup_and_the_admin_call_reach_every_worker(database_url, policy_file):
    with running_server(database_url, workers=3, env={"AUTHZ_POLICY": str(policy_file)}) as base:
        api = Api(http_transport(base, requests.Session()))
        first = api.get("/v1/policy").json["sha256"]
        # The admin call, answered by one worker; every worker follows the change log.
        policy_file.write_text(WIDER)
        reloaded = api.post("/v1/policy/reload", {}).json
        ask = {"actor": user("u_x"), "action": "read", "resource": account("acc_x"), "at_least_revision": reloaded["revision"]}
        assert {Api(http_transport(base)).post("/v1/authorize", ask).json["policy"] for _ in range(30)} == {reloaded["sha256"]}
        # SIGHUP to the master: the file is loaded again, validated, recorded; new workers start with it.
        policy_file.write_text(ORIGINAL)
        master = MASTER_PIDS[base]
        os.kill(master, signal.SIGHUP)
        deadline = time.monotonic() + 30
        while Api(http_transport(base)).get("/v1/policy").json["sha256"] != first:
            assert time.monotonic() < deadline, "SIGHUP did not bring the policy back"
            time.sleep(0.2)
        assert {Api(http_transport(base)).post("/v1/authorize", {**ask, "at_least_revision": 0}).json["policy"]
                for _ in range(30)} == {first}
        # A broken file on SIGHUP: refused, the policy in force keeps serving.
        policy_file.write_text(UNPARSABLE)
        os.kill(master, signal.SIGHUP)
        time.sleep(3)
        assert {Api(http_transport(base)).get("/v1/policy").json["sha256"] for _ in range(20)} == {first}

