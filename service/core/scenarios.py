"""The scenario runner: business situations written for auditors, run against a policy.

A scenario (`policies/scenarios/*.yaml`, kept with the policy) sets accounts, members, settings and
support agents up (`given`), then reads as a list of sentences (`steps`):

    - u_client invites u_partner as payment_manager to acc_b
    - u_partner may manage_subscription Account acc_b
    - u_client may not view_subscription Account acc_b
    - do: u_client removes u_partner from acc_b
      refused: payment_manager_protected
      message: "Subscription Manager cannot be deleted ..."

A change is made through the real write path (its invariants included) on a
fresh SQLite database; a decision is the policy's answer on the facts stored
there. `authz test` runs them all; pytest runs them too.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

import policies
from models.changelog import Who
from models.database import Database
from models.errors import Conflict, NotFound, StorageError
from models.facts import facts_now
from policies.engine import Policy, PolicyInForce
from policies.world import RESOURCE_TYPES, ROLES
from service.core.documents import SETTINGS
from service.core.errors import BreaksInvariant, Forbidden, InvalidRequest, Refused
from service.core.store import Store

# The scenario files are the policy's own tests, kept with it for auditors: policies/scenarios/*.yaml.
SCENARIO_DIR = Path(policies.__file__).resolve().parent / "scenarios"
SYSTEM = "system"
# A step may name the refusal it expects by its code (`refused: last_admin`) or by the HTTP status
# the API answers it with (`refused: 403`), the way the people who write scenarios know it.
REFUSAL_STATUSES: tuple[tuple[type[Exception], int], ...] = (
    (Forbidden, 403),
    (BreaksInvariant, 409),
    (Conflict, 409),
    (NotFound, 404),
    (InvalidRequest, 400),
)

_DECISION = re.compile(r"^(?P<actor>\S+) may (?P<negated>not )?(?P<action>\w+) (?P<type>[A-Z]\w+)(?P<rest>(?: \S+)*)$")
_WRITES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^(?P<actor>\S+) signs up (?P<account>\S+) with admin (?P<user>\S+)$"), "create_account"),
    (re.compile(r"^(?P<actor>\S+) invites (?P<user>\S+) as (?P<role>\w+) to (?P<account>\S+)$"), "invite"),
    (
        re.compile(r"^(?P<actor>\S+) changes the role of (?P<user>\S+) on (?P<account>\S+) to (?P<role>\w+)$"),
        "change_role",
    ),
    (re.compile(r"^(?P<actor>\S+) removes (?P<user>\S+) from (?P<account>\S+)$"), "remove_member"),
    (re.compile(r"^(?P<actor>\S+) sets (?P<setting>\w+) to (?P<value>true|false) on (?P<account>\S+)$"), "settings"),
    (re.compile(r"^(?P<actor>\S+) makes (?P<user>\S+) a support agent$"), "add_support_agent"),
    (re.compile(r"^(?P<actor>\S+) removes support agent (?P<user>\S+)$"), "remove_support_agent"),
]


class ScenarioError(Exception):
    """A scenario file that cannot be read: a sentence the runner does not understand, a bad field."""


@dataclass
class StepResult:
    number: int
    text: str
    passed: bool
    detail: str = ""


@dataclass
class ScenarioResult:
    name: str
    path: Path
    steps: list[StepResult] = field(default_factory=list)
    error: str | None = None

    @property
    def passed(self) -> bool:
        return self.error is None and all(step.passed for step in self.steps)


def scenario_files(directory: Path = SCENARIO_DIR) -> list[Path]:
    return sorted(directory.glob("*.yaml"))


def run_all(policy: Policy, directory: Path = SCENARIO_DIR) -> list[ScenarioResult]:
    """Run every scenario of `directory` against `policy`."""
    return [run_file(policy, path) for path in scenario_files(directory)]


def run_file(policy: Policy, path: Path) -> ScenarioResult:
    try:
        document = yaml.safe_load(path.read_text())
        if not isinstance(document, dict) or "scenario" not in document or "steps" not in document:
            raise ScenarioError("a scenario needs `scenario` (its name) and `steps`")
    except (OSError, yaml.YAMLError, ScenarioError) as error:
        return ScenarioResult(path.stem, path, error=f"cannot read {path.name}: {error}")
    result = ScenarioResult(str(document["scenario"]), path)
    with tempfile.TemporaryDirectory() as directory:
        db = Database(f"sqlite:///{directory}/scenario.sqlite3")
        try:
            db.migrate()
            world = _World(db, policy)
            try:
                world.set_up(document.get("given") or {})
            except (Refused, StorageError, ScenarioError) as error:
                result.error = f"`given` could not be set up: {getattr(error, 'message', error)}"
                return result
            for number, step in enumerate(document["steps"], start=1):
                result.steps.append(world.run_step(number, step))
        finally:
            db.dispose()
    return result


class _World:
    def __init__(self, db: Database, policy: Policy) -> None:
        self.db = db
        self.policy = policy
        self.store = Store(db, PolicyInForce(policy))

    def set_up(self, given: dict[str, Any]) -> None:
        system = Who(None, "scenario")
        for account_id, account in (given.get("accounts") or {}).items():
            self.store.create_account(account_id, account.get("name", account_id), account["admin"], system)
            for user, role in (account.get("members") or {}).items():
                self.store.invite(account_id, user, role, system)
            settings = account.get("settings") or {}
            unknown = set(settings) - set(SETTINGS)
            if unknown:
                raise ScenarioError(f"unknown settings {sorted(unknown)}")
            if settings:
                self.store.update_billing_settings(account_id, settings, system)
        for user in given.get("support_agents") or []:
            self.store.add_support_agent(user, system)

    def run_step(self, number: int, step: Any) -> StepResult:
        if isinstance(step, str):
            text, expectation = step, {}
        elif isinstance(step, dict) and isinstance(step.get("do"), str):
            text, expectation = step["do"], step
        else:
            return StepResult(number, str(step), False, "a step is a sentence, or a mapping with `do`")
        decision = _DECISION.match(text)
        if decision:
            return self._decide(number, text, decision)
        for pattern, operation in _WRITES:
            match = pattern.match(text)
            if match:
                return self._write(number, text, operation, match.groupdict(), expectation)
        return StepResult(number, text, False, "this sentence is not one the scenario runner understands")

    def _decide(self, number: int, text: str, match: re.Match[str]) -> StepResult:
        resource_type = match["type"]
        if resource_type not in RESOURCE_TYPES:
            return StepResult(number, text, False, f"unknown resource type {resource_type}")
        resource = _resource(resource_type, match["rest"].split())
        missing = set(RESOURCE_TYPES[resource_type].attributes) - set(resource)
        if missing:
            return StepResult(number, text, False, f"{resource_type} needs {', '.join(sorted(missing))}")
        if match["action"] not in self.policy.actions[resource_type]:
            return StepResult(number, text, False, f"the policy has no action {match['action']} on {resource_type}")
        with facts_now(self.db) as facts:
            situation = self.policy.situation(facts, resource_type, match["actor"], resource)
        allowed = self.policy.is_allowed(situation, match["action"])
        expected = match["negated"] is None
        if allowed == expected:
            return StepResult(number, text, True)
        return StepResult(number, text, False, f"the policy says {'allowed' if allowed else 'denied'}")

    def _write(self, number: int, text: str, operation: str, words: dict, expectation: dict) -> StepResult:
        actor = words.pop("actor")
        who = Who(None if actor == SYSTEM else actor, "scenario")
        try:
            written = _OPERATIONS[operation](self.store, who, words)
        except ScenarioError as error:
            return StepResult(number, text, False, str(error))
        except (Refused, StorageError) as error:
            refused = expectation.get("refused")
            status = _status(error)
            if refused is None:
                why = f"{status} {error.code}" if status is not None else error.code
                return StepResult(number, text, False, f"refused ({why}): {error.message}")
            if refused not in (error.code, status):
                return StepResult(number, text, False, f"refused with {error.code}, not {refused}")
            if "message" in expectation and expectation["message"] != error.message:
                return StepResult(number, text, False, f"refused with another message: {error.message}")
            return StepResult(number, text, True)
        if "refused" in expectation:
            return StepResult(number, text, False, f"expected a refusal ({expectation['refused']}); it was made")
        if "warning" in expectation:
            warnings = written.document.get("warnings", [])
            if not any(expectation["warning"] in warning for warning in warnings):
                return StepResult(number, text, False, f"no warning mentioning {expectation['warning']!r}: {warnings}")
        if expectation.get("no_warning") and written.document.get("warnings"):
            return StepResult(number, text, False, f"unexpected warnings: {written.document['warnings']}")
        return StepResult(number, text, True)


def _status(error: Exception) -> int | None:
    return next((status for kind, status in REFUSAL_STATUSES if isinstance(error, kind)), None)


def _resource(resource_type: str, words: list[str]) -> dict[str, str]:
    resource: dict[str, str] = {}
    for word in words:
        name, sep, value = word.partition("=")
        if sep:
            resource[name] = value
        else:
            resource["id"] = word
    if resource_type == "Account" and "id" not in resource and "account" in resource:
        resource["id"] = resource.pop("account")
    return resource


def _check_setting(setting: str) -> str:
    if setting not in SETTINGS:
        raise ScenarioError(f"unknown setting {setting}")
    return setting


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise ScenarioError(f"unknown role {role}")
    return role


_OPERATIONS: dict[str, Callable[[Store, Who, dict], Any]] = {
    "create_account": lambda store, who, w: store.create_account(w["account"], w["account"], w["user"], who),
    "invite": lambda store, who, w: store.invite(w["account"], w["user"], _check_role(w["role"]), who),
    "change_role": lambda store, who, w: store.change_role(w["account"], w["user"], _check_role(w["role"]), who),
    "remove_member": lambda store, who, w: store.remove_member(w["account"], w["user"], who),
    "settings": lambda store, who, w: store.update_billing_settings(
        w["account"], {_check_setting(w["setting"]): w["value"] == "true"}, who
    ),
    "add_support_agent": lambda store, who, w: store.add_support_agent(w["user"], who)[0],
    "remove_support_agent": lambda store, who, w: store.remove_support_agent(w["user"], who),
}


def report(results: list[ScenarioResult]) -> str:
    """A plain-text pass/fail report, one line per scenario, the failing steps underneath."""
    lines = []
    for result in results:
        mark = "PASS" if result.passed else "FAIL"
        lines.append(f"{mark}  {result.name}  ({result.path.name}, {len(result.steps)} steps)")
        if result.error:
            lines.append(f"      {result.error}")
        for step in result.steps:
            if not step.passed:
                lines.append(f"      step {step.number}: {step.text}")
                lines.append(f"        -> {step.detail}")
    passed = sum(result.passed for result in results)
    lines.append(f"\n{passed} of {len(results)} scenarios pass")
    return "\n".join(lines)
