"""Loading `policy.polar` into oso and compiling it into a decision table.

At load time the policy is evaluated by oso for every situation (see
`situations.py` and `compiler.py`): the answer is the set of actions it grants
there. A decision then costs a dictionary lookup, and it is still the policy's
own answer: the table holds nothing oso did not say, and a policy whose answers
the table could not carry exactly is refused when it loads. A situation
missing from the table grants nothing (deny by default), except an id pattern
the table has not met yet, which oso evaluates once and the table keeps.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path

from oso import Oso
from polar.exceptions import OsoError as PolarError

from policies.compiler import PolicyError, UnsoundPolicy, compile_policy, evaluate_pattern
from policies.reader import Rule, read_rules
from policies.situations import FactSource, Names, Situation, build_world, situation_of
from policies.world import POLAR_CLASSES, RESOURCE_TYPES

DEFAULT_POLICY_PATH = Path(__file__).resolve().parent.parent / "policy.polar"
__all__ = ["Policy", "PolicyError", "UnsoundPolicy", "load_policy", "policy_from_text", "policy_path", "new_oso"]


def policy_path() -> Path:
    """The policy file the service uses: `AUTHZ_POLICY`, or `policy.polar` at the top of the project."""
    return Path(os.environ.get("AUTHZ_POLICY") or DEFAULT_POLICY_PATH)


def new_oso(text: str, source_name: str = "policy.polar") -> Oso:
    """An oso instance with the world's classes registered and the policy text loaded."""
    oso = Oso()
    for cls in POLAR_CLASSES:
        oso.register_class(cls)
    try:
        # load_str keeps the text we hash identical to the text we evaluate.
        oso.load_str(text)
    except PolarError as error:
        raise PolicyError(f"{source_name}: {error}") from error
    return oso


class Policy:
    """One loaded version of the policy: its text, its sha256 and its decision table."""

    def __init__(self, text: str, source_name: str = "policy.polar") -> None:
        self.text = text
        self.source_name = source_name
        self.sha256 = hashlib.sha256(text.encode()).hexdigest()
        self.oso = new_oso(text, source_name)
        compiled = compile_policy(self.oso, text, source_name)
        # Every situation and id pattern the compiler met: the exhaustive set proofs and diffs range over.
        self.table: Mapping[Situation, frozenset[str]] = compiled.table
        self._met_later: dict[Situation, frozenset[str]] = {}  # id patterns first met by a decision
        # For each id slot ("actor", "account", ...), the literals the policy compares it with.
        self.id_literals: Mapping[str, frozenset[str]] = compiled.literals
        self._evaluating = threading.Lock()

    @cached_property
    def actions(self) -> dict[str, tuple[str, ...]]:
        """For each resource type, every action the policy grants in some situation, sorted."""
        found: dict[str, set[str]] = {name: set() for name in RESOURCE_TYPES}
        for situation, granted in self.table.items():
            found[situation.resource_type] |= granted
        return {name: tuple(sorted(actions)) for name, actions in found.items()}

    @cached_property
    def rules(self) -> list[Rule]:
        """The policy's permission-granting rules, as an auditor reads them (for explanations)."""
        return read_rules(self.text)

    def situation(self, facts: FactSource, resource_type: str, actor_id: str, attributes: dict[str, str]) -> Situation:
        """The situation of a decision, its ids matched against this policy's literals."""
        return situation_of(facts, resource_type, actor_id, attributes, self.id_literals)

    def allowed_actions(self, situation: Situation) -> frozenset[str]:
        """The actions granted in this situation (none for a situation the table lacks)."""
        try:
            return self.table[situation]
        except KeyError:
            if not situation.ids:
                return frozenset()
        with self._evaluating:  # an id pattern not met while compiling: equivalent to one that was (compiler.py)
            if situation not in self._met_later:
                self._met_later[situation] = evaluate_pattern(self.oso, situation)
            return self._met_later[situation]

    def is_allowed(self, situation: Situation, action: str) -> bool:
        return action in self.allowed_actions(situation)

    def has_role(self, situation: Situation, names: Names, role: str) -> bool:
        """Ask oso whether the situation's actor holds `role` (a derived one too) on its account."""
        actor, resource = build_world(situation, names)
        account = resource if situation.resource_type == "Account" else resource.account
        return self.oso.query_rule_once("has_role", actor, role, account)


_compiled: dict[str, Policy] = {}


def policy_from_text(text: str, source_name: str = "policy.polar") -> Policy:
    """The policy of this text, compiled once per process (compiling takes about a second)."""
    sha256 = hashlib.sha256(text.encode()).hexdigest()
    if sha256 not in _compiled:
        _compiled[sha256] = Policy(text, source_name=source_name)
    return _compiled[sha256]


def load_policy(path: Path | str | None = None) -> Policy:
    """The policy in the file at `path` (default: `policy_path()`)."""
    path = Path(path) if path is not None else policy_path()
    try:
        text = path.read_text()
    except OSError as error:
        raise PolicyError(f"cannot read the policy {path}: {error}") from error
    return policy_from_text(text, path.name)


class PolicyInForce:
    """The policy a process decides with; calling it answers the current one (it may be replaced on reload)."""

    def __init__(self, policy: Policy) -> None:
        self.current = policy

    def __call__(self) -> Policy:
        return self.current

    def replace(self, policy: Policy) -> None:
        self.current = policy
