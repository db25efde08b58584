"""The auditors' scenario files, and the committed permission matrix, against policy.polar."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from policies.engine import DEFAULT_POLICY_PATH, Policy, load_policy
from policies.matrix import to_html, to_markdown
from service.cli import main
from service.core.scenarios import report, run_all, run_file, scenario_files

PERMISSIONS_DOC = Path(__file__).resolve().parent.parent / "docs" / "permissions.md"


@pytest.mark.parametrize("path", scenario_files(), ids=lambda path: path.stem)
def test_each_scenario_passes(path):
    result = run_file(load_policy(), path)
    assert result.passed, report([result])


def test_the_scenarios_cover_the_business_situations():
    names = {path.stem for path in scenario_files()}
    for situation in ["set", "result", "ending", "multi_account", "customer_service", "leak", "shape"]:
        assert any(situation in name for name in names), situation


def _altered_policy(old: str, new: str) -> Policy:
    text = DEFAULT_POLICY_PATH.read_text()
    assert old in text
    return Policy(text.replace(old, new))


def test_a_policy_that_forgets_the_restriction_fails_the_scenarios():
    broken = _altered_policy(
        "  has_role(user, \"admin\", account) and\n  not account.restrict_subscription_to_payment_manager;",
        "  has_role(user, \"admin\", account);",
    )
    results = run_all(broken)
    failed = {result.path.stem for result in results if not result.passed}
    assert {"02_the_result", "03_ending_the_arrangement"} <= failed
    text = report(results)
    assert "FAIL  The result" in text and "u_client may not view_subscription Account acc_b" in text
    assert "the policy says allowed" in text


def test_a_sentence_the_runner_does_not_understand_fails_loudly(tmp_path):
    path = tmp_path / "odd.yaml"
    path.write_text("scenario: odd\nsteps:\n  - u_client may perhaps read Account acc_b\n  - system eats acc_b\n")
    result = run_file(load_policy(), path)
    assert not result.passed
    assert all("not one the scenario runner understands" in step.detail for step in result.steps)
    unreadable = tmp_path / "bad.yaml"
    unreadable.write_text("just: [a list\n")
    assert "cannot read" in run_file(load_policy(), unreadable).error


def test_the_committed_matrix_matches_the_policy():
    assert PERMISSIONS_DOC.read_text() == to_markdown(load_policy()), (
        "docs/permissions.md is out of date: run `.venv/bin/authz matrix > docs/permissions.md`"
    )


def test_the_matrix_is_computed_from_the_policy():
    markdown = to_markdown(load_policy())
    restricted_row = next(line for line in markdown.splitlines() if line.startswith("| `view_subscription`"))
    cells = [cell.strip() for cell in restricted_row.strip("|").split("|")][1:]
    assert cells == ["admin, payment_manager", "admin, payment_manager", "payment_manager", "payment_manager"]
    broken = _altered_policy('"view_subscription" if "subscription_manager";', '"view_subscription" if "reader";')
    assert to_markdown(broken) != markdown
    html = to_html(load_policy())
    assert "<table>" in html and "support agent" in html


def test_authz_test_and_policy_check_from_the_command_line(tmp_path):
    runner = CliRunner()
    passing = runner.invoke(main, ["test"])
    assert passing.exit_code == 0 and "7 of 7 scenarios pass" in passing.output
    broken = tmp_path / "broken.polar"
    broken.write_text(DEFAULT_POLICY_PATH.read_text().replace('"view_workspace" if "reader";', ""))
    checked = runner.invoke(main, ["policy", "check", str(broken)])
    assert checked.exit_code == 1 and "FAIL" in checked.output
    unparsable = tmp_path / "unparsable.polar"
    unparsable.write_text("allow(actor, action, resource) if")
    assert runner.invoke(main, ["policy", "check", str(unparsable)]).exit_code == 1
    assert runner.invoke(main, ["matrix"]).output == PERMISSIONS_DOC.read_text()
