"""Proved properties (`authz prove`), policy diffs (`authz policy diff`) and what a reload refuses."""

from __future__ import annotations

import json
import subprocess

import pytest
from click.testing import CliRunner

from policies.diff import diff
from policies.engine import DEFAULT_POLICY_PATH, policy_from_text
from policies.properties import PropertyFileError, load_properties, prove
from service.app import create_app
from service.cli import main
from tests.support import TEST_KEY, Api, flask_transport

ORIGINAL = DEFAULT_POLICY_PATH.read_text()
# Passes every shipped scenario, yet lets readers download a restricted account's subscription invoices.
READERS_DOWNLOAD = ORIGINAL + """
# Readers download the subscription invoices.
has_permission(user: User, "download", invoice: SubscriptionInvoice) if
  has_role(user, "reader", invoice.account);
"""
FIRED = ORIGINAL.replace('  "view_workspace" if "admin";\n', "") + """
# Admins see the workspace, except u_fired whose access was withdrawn.
has_permission(user: User, "view_workspace", account: Account) if
  has_role(user, "admin", account) and user.id != "u_fired";
"""
NO_READERS = ORIGINAL.replace('  "view_workspace" if "reader";\n', "")


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_the_shipped_policy_satisfies_every_property():
    verdicts = prove(policy_from_text(ORIGINAL), load_properties())
    assert len(verdicts) >= 8
    assert [v.property.name for v in verdicts if not v.holds] == []


def test_prove_prints_a_counterexample_naming_the_role_and_the_settings(tmp_path):
    path = tmp_path / "readers.polar"
    path.write_text(READERS_DOWNLOAD)
    proved = run("prove", str(path))
    assert proved.exit_code == 1
    assert "FAIL  a restricted account keeps what the partner pays to the partner" in proved.output
    assert (
        "counterexample: a reader (not a support agent) of an account that restricts subscription management to its "
        "payment manager and keeps subscription invoices out of its purchases may download its subscription invoices"
    ) in proved.output
    assert run("prove").exit_code == 0


def test_a_property_broken_only_for_one_named_user_is_found(tmp_path):
    named = ORIGINAL + """
# The robot removes members.
has_permission(user: User, "remove", _membership: Membership) if
  user.id = "u_robot";
"""
    verdicts = {v.property.name: v for v in prove(policy_from_text(named), load_properties())}
    assert not verdicts["only admins manage members"].holds
    assert "when the user is u_robot" in verdicts["only admins manage members"].counterexamples[0]


def test_a_properties_file_that_does_not_read_is_an_error(tmp_path):
    bad = tmp_path / "properties.yaml"
    bad.write_text("- property: x\n  who: {role: boss}\n  never: {Account: [read]}\n")
    with pytest.raises(PropertyFileError, match="role must be among"):
        load_properties(bad)
    assert run("prove", "--properties", str(bad)).exit_code == 2


def test_policy_check_runs_scenarios_and_properties(tmp_path):
    path = tmp_path / "readers.polar"
    path.write_text(READERS_DOWNLOAD)
    checked = run("policy", "check", str(path))
    assert checked.exit_code == 1
    assert "7 of 7 scenarios pass" in checked.output  # the scenarios alone would let it through
    assert "counterexample: a reader" in checked.output
    assert run("policy", "check", str(DEFAULT_POLICY_PATH)).exit_code == 0


def test_a_reload_refuses_a_policy_that_breaks_a_property(database_url, tmp_path):
    path = tmp_path / "policy.polar"
    path.write_text(ORIGINAL)
    app = create_app(
        {"DATABASE_URL": database_url, "AUTHZ_PRESHARED_KEY": TEST_KEY, "MIGRATE": False, "AUTHZ_POLICY": str(path)}
    )
    try:
        api = Api(flask_transport(app.test_client()))
        path.write_text(READERS_DOWNLOAD)
        refused = api.post("/v1/policy/reload", {})
        assert refused.status == 409 and refused.error_code == "policy_rejected"
        assert "a reader (not a support agent)" in refused.json["error"]["message"]
        assert api.get("/v1/policy").json["text"] == ORIGINAL
    finally:
        app.extensions["authz"].close()


def test_a_policy_taken_up_is_logged_with_its_diff(database_url, tmp_path):
    path = tmp_path / "policy.polar"
    path.write_text(ORIGINAL)
    app = create_app(
        {"DATABASE_URL": database_url, "AUTHZ_PRESHARED_KEY": TEST_KEY, "MIGRATE": False, "AUTHZ_POLICY": str(path)}
    )
    try:
        api = Api(flask_transport(app.test_client()))
        path.write_text(FIRED)
        assert api.post("/v1/policy/reload", {}).status == 200
        loads = [c for c in api.get("/v1/changes").json["changes"] if c["kind"] == "policy.load"]
        assert "changes" not in loads[0]["after"]  # the first policy: nothing to compare with
        assert loads[-1]["after"]["changes"] == [
            "admins lose view_workspace on Account, whatever the billing settings, when the user is u_fired",
            "admins lose download on SubscriptionInvoice, while the account restricts subscription management to its "
            "payment manager and adds subscription invoices to its purchases, when the user is u_fired",
            "admins lose view on SubscriptionInvoice, while the account restricts subscription management to its "
            "payment manager and adds subscription invoices to its purchases, when the user is u_fired",
        ]
    finally:
        app.extensions["authz"].close()


def test_diff_groups_changes_in_business_words():
    changes = diff(policy_from_text(ORIGINAL), policy_from_text(NO_READERS))
    assert [change.text for change in changes] == [
        "readers lose view_workspace on Account, whatever the billing settings",
        "readers lose download on SubscriptionInvoice, while the account adds subscription invoices to its purchases",
        "readers lose view on SubscriptionInvoice, while the account adds subscription invoices to its purchases",
    ]
    assert diff(policy_from_text(ORIGINAL), policy_from_text(ORIGINAL)) == []


def test_diff_is_exhaustive_it_agrees_with_every_situation():
    old, new = policy_from_text(ORIGINAL), policy_from_text(FIRED)
    changed = {(c.resource_type, c.action) for c in diff(old, new)}
    from policies.diff import compare

    every = compare(old, new)
    assert {(situation.resource_type, action) for situation, action, _ in every} == changed
    assert all(situation.ids == (("actor", "u_fired"),) for situation, _, _ in every)


def test_policy_diff_exit_codes_and_json(tmp_path):
    new = tmp_path / "new.polar"
    new.write_text(NO_READERS)
    same = run("policy", "diff", str(DEFAULT_POLICY_PATH), str(DEFAULT_POLICY_PATH))
    assert same.exit_code == 0 and "no decision changes" in same.output
    changed = run("policy", "diff", str(DEFAULT_POLICY_PATH), str(new))
    assert changed.exit_code == 1
    assert "- readers lose view_workspace on Account, whatever the billing settings" in changed.output
    as_json = json.loads(run("policy", "diff", "--json", str(DEFAULT_POLICY_PATH), str(new)).output)
    first = as_json["changes"][0]
    assert first["change"] == "lost" and first["action"] == "view_workspace" and first["who"][0]["role"] == "reader"
    assert len(first["settings"]) == 4
    broken = tmp_path / "broken.polar"
    broken.write_text("allow(")
    assert run("policy", "diff", str(DEFAULT_POLICY_PATH), str(broken)).exit_code == 2
    assert run("policy", "diff", "git:no-such-revision", str(new)).exit_code == 2


def test_policy_diff_reads_a_git_revision():
    inside = subprocess.run(["git", "-C", str(DEFAULT_POLICY_PATH.parent), "rev-parse", "HEAD"], capture_output=True)
    if inside.returncode != 0:
        pytest.skip("not a git checkout")
    head = run("policy", "diff", "git:HEAD", str(DEFAULT_POLICY_PATH))
    assert head.exit_code in (0, 1) and head.output.startswith("git:HEAD (")


def test_the_auditor_policy_page_lists_the_versions_with_their_changes(database_url, tmp_path):
    path = tmp_path / "policy.polar"
    path.write_text(ORIGINAL)
    app = create_app(
        {"DATABASE_URL": database_url, "AUTHZ_PRESHARED_KEY": TEST_KEY, "MIGRATE": False, "AUTHZ_POLICY": str(path)}
    )
    try:
        api = Api(flask_transport(app.test_client()))
        path.write_text(FIRED)
        revision = api.post("/v1/policy/reload", {}).json["revision"]
        page = app.test_client().get("/audit/policy", headers={"Authorization": f"Bearer {TEST_KEY}"})
        html = page.get_data(as_text=True)
        assert page.status_code == 200
        assert f'id="version-{revision}"' in html and "the first policy recorded" in html
        assert "admins lose view_workspace on Account, whatever the billing settings, when the user is u_fired" in html
        assert f"/audit/policy?as_of_revision={revision}" in html
    finally:
        app.extensions["authz"].close()
