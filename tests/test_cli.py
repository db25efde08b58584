"""The `authz` command-line tool, run as an operator or an auditor would."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from service.cli import main


@pytest.fixture
def cli(database_url, monkeypatch, api):
    monkeypatch.setenv("DATABASE_URL", database_url)
    api.create_account("acc_b", "u_client")
    api.invite("acc_b", "u_partner", "payment_manager")
    api.settings("acc_b", "u_partner", restrict_subscription_to_payment_manager=True)
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(main, list(args), catch_exceptions=False)

    return run


def test_check_exits_0_when_allowed_and_1_when_denied(cli):
    allowed = cli("check", "u_partner", "manage_subscription", "Account", "id=acc_b")
    assert allowed.exit_code == 0 and allowed.output.startswith("allowed")
    denied = cli("check", "u_client", "view_subscription", "Account", "id=acc_b")
    assert denied.exit_code == 1 and denied.output.startswith("denied")
    card = cli("check", "u_partner", "delete", "PaymentMethod", "id=pm_1", "account=acc_b", "owner=u_partner")
    assert card.exit_code == 0


def test_check_refuses_bad_arguments(cli):
    assert cli("check", "u_partner", "fly", "Account", "id=acc_b").exit_code == 2
    assert cli("check", "u_partner", "view", "PaymentMethod", "id=pm_1", "account=acc_b").exit_code == 2
    assert cli("check", "u_partner", "view", "Planet", "id=p").exit_code == 2
    assert cli("check", "u_partner", "read", "Account", "acc_b").exit_code == 2


def test_explain_prints_the_reason_the_rules_and_what_would_change_it(cli):
    result = cli("explain", "u_client", "view_subscription", "Account", "id=acc_b")
    assert result.exit_code == 0
    assert "DENIED" in result.output
    assert "u_client is admin of acc_b, but acc_b restricts subscription management to its payment manager" in result.output
    assert '"view_subscription" if "subscription_manager";' in result.output
    assert "It would be allowed if:" in result.output
    as_json = json.loads(cli("explain", "--json", "u_partner", "manage_subscription", "Account", "id=acc_b").output)
    assert as_json["allowed"] is True and as_json["explanation"]["facts"]


def test_keys_create_list_revoke(cli, api):
    created = cli("keys", "create", "--name", "billing", "--scopes", "check,write")
    assert created.exit_code == 0
    key = created.output.splitlines()[0]
    assert key.startswith("authz_")
    assert api.with_key(key).post("/v1/accounts", {"id": "acc_k", "name": "K", "admin": "u_k"}).status == 201
    listing = cli("keys", "list").output
    key_id = key.split("_")[1]
    assert key_id in listing and "billing" in listing and "active" in listing
    assert cli("keys", "create", "--name", "x", "--scopes", "root").exit_code == 2
    assert cli("keys", "revoke", key_id).exit_code == 0
    assert api.with_key(key).get("/v1/changes").status == 401
    assert "revoked" in cli("keys", "list").output
    assert cli("keys", "revoke", key_id).exit_code == 2


def test_changes_list_and_verify(cli):
    listing = cli("changes", "list", "--account", "acc_b").output.splitlines()
    assert len(listing) == 3 and "member.invite" in listing[1]
    verified = cli("changes", "verify")
    assert verified.exit_code == 0 and verified.output.startswith("intact: 4 entries")  # the policy, then 3 changes
