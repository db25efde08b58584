"""Which policy the service decides with, and how it changes.

The policy in force is the one recorded last in the change log (kind
`policy.load`, with its text and sha256). Every process follows the log: when
its fact cache reads a `policy.load` entry, it compiles that text and decides
with it from that revision on, so all workers and hosts agree, and a decision
sent with `at_least_revision` reflects policy changes like any other change.

A policy file becomes the policy in force only once it loads (the compiler
refuses what it could not enforce exactly), passes every scenario of
`policies/scenarios` and satisfies every property of
`policies/properties.yaml`: at start (`authz serve`), on SIGHUP to the
server's master (`service/serving.py`), or on `POST /v1/policy/reload`. Otherwise the previous policy
keeps serving and the reason is logged and answered. The change-log entry of
a policy taken up records what it changes against the one before, in words.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from models.changelog import Who
from models.database import Database
from models.history import read_recorded_policy
from policies.diff import diff
from policies.engine import Policy, PolicyError, PolicyInForce, load_policy, policy_from_text, policy_path
from policies.properties import load_properties, prove
from policies.properties import report as properties_report
from service.core.errors import Unenforceable
from service.core.scenarios import report, run_all
from service.core.store import Store

log = logging.getLogger("authz.policy")
_validated: dict[str, str | None] = {}  # sha256 -> None when scenarios and properties pass, else the report


@dataclass(frozen=True)
class ReloadResult:
    loaded: bool
    sha256: str
    revision: int | None
    reason: str


def validation_failures(policy: Policy) -> str | None:
    """None when every scenario passes and every property holds, else the failure report (memoized per sha256)."""
    if policy.sha256 not in _validated:
        results = run_all(policy)
        verdicts = prove(policy, load_properties())
        problems = []
        if not all(result.passed for result in results):
            problems.append(f"it fails the scenarios:\n{report(results)}")
        if not all(verdict.holds for verdict in verdicts):
            problems.append(f"it breaks the properties:\n{properties_report(verdicts)}")
        _validated[policy.sha256] = "\n".join(problems) or None
    return _validated[policy.sha256]


class PolicyKeeper:
    """Keeps the process deciding with the policy in force: adopts a valid file, follows the log."""

    def __init__(self, db: Database, store: Store, in_force: PolicyInForce, path: str | Path | None = None) -> None:
        self.db = db
        self.store = store
        self.in_force = in_force
        self.path = Path(path) if path else policy_path()

    def adopt_file(self) -> ReloadResult:
        """At start: make the file's policy the one in force if it is new and valid; else follow the log.

        A file that fails to load or to pass the scenarios is refused; if the
        log holds a policy, that one keeps serving; if not, the service cannot start.
        """
        result = self.reload()
        if not result.loaded and self.recorded() is None:
            raise PolicyError(result.reason)
        return result

    def reload(self) -> ReloadResult:
        """Load the policy file again; it replaces the policy in force only if it loads and passes every scenario."""
        try:
            candidate = load_policy(self.path)
        except PolicyError as error:
            return self._refused(f"{self.path} does not load: {error}")
        failures = validation_failures(candidate)
        if failures is not None:
            return self._refused(f"{self.path} is refused, keeping the policy in force: {failures}")
        revision = self.store.record_policy(candidate, Who(None, None), changes=self._changes_from_recorded(candidate))
        self.in_force.replace(candidate)
        if revision is None:
            return ReloadResult(True, candidate.sha256, None, "this policy was already in force")
        log.info("policy %s in force from revision %s", candidate.sha256, revision)
        return ReloadResult(True, candidate.sha256, revision, f"policy in force from revision {revision}")

    def _changes_from_recorded(self, candidate: Policy) -> list[str] | None:
        """What the candidate changes against the policy the log records (None when the log records none)."""
        recorded = self.recorded()
        if recorded is None or recorded[1] == candidate.sha256:
            return None
        try:
            previous = policy_from_text(recorded[2])
        except PolicyError as error:
            return [f"the previous policy no longer compiles ({error}); no comparison"]
        return [change.text for change in diff(previous, candidate)]

    def _refused(self, reason: str) -> ReloadResult:
        self.follow()
        log.error("policy not reloaded: %s", reason)
        return ReloadResult(False, self.in_force().sha256, None, reason)

    def recorded(self, revision: int | None = None) -> tuple[int, str, str] | None:
        return read_recorded_policy(self.db, revision)

    def follow(self) -> None:
        """Decide with the policy the log records (at the latest revision); called as the fact cache reads the log."""
        recorded = self.recorded()
        if recorded is None or recorded[1] == self.in_force().sha256:
            return
        try:
            self.in_force.replace(policy_from_text(recorded[2]))
        except PolicyError as error:  # recorded policies were valid when recorded; say loudly if one no longer is
            log.error("cannot compile the recorded policy %s: %s; keeping %s", recorded[1], error, self.in_force().sha256)

    def at(self, revision: int) -> Policy:
        """The policy in force at `revision` (the current one if the log records none that early).

        A policy recorded then that this version of the service refuses (its compiler no longer
        carries it exactly) is not evaluated some other way: the answer is a refusal that says so.
        """
        recorded = self.recorded(revision)
        if recorded is None:
            return self.in_force()
        try:
            return policy_from_text(recorded[2])
        except PolicyError as error:
            raise Unenforceable(
                f"the policy in force at revision {revision} (sha256 {recorded[1][:12]}, recorded at revision "
                f"{recorded[0]}) cannot be enforced exactly by this version of the service: {error}"
            ) from error
