"""Properties of the policy, proved over every situation: `authz prove`.

`policies/properties.yaml` states in business words what the policy must
always or never grant (see the file's header for its form). A situation is
finite (roles, support agents, two settings, the other user, and the ids the
policy names: see `situations.py`), and the compiled table holds oso's answer
for every one a decision can meet, so checking a property over the table is a
proof, not a sample. A failing property is reported with a counterexample:
the role, the settings and the action, in words.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from policies.engine import Policy
from policies.situations import Situation
from policies.words import decision_words
from policies.world import RESOURCE_TYPES, ROLES

PROPERTIES_PATH = Path(__file__).resolve().parent / "properties.yaml"
_ROLE_NAMES = {**{role: role for role in ROLES}, "none": None}
_WHO_KEYS = {"role", "support_agent", "restricted", "invoices_in_purchases", "other_user"}
_OTHER_KEYS = {"is_the_user", "role", "support_agent"}


class PropertyFileError(Exception):
    """The properties file cannot be read: a key, a role or an action it does not know."""


@dataclass(frozen=True)
class Property:
    name: str
    says: str
    who: dict[str, Any]
    never: dict[str, tuple[str, ...]]
    always: dict[str, tuple[str, ...]]

    def applies(self, situation: Situation) -> bool:
        who = self.who
        checks = (
            ("role", situation.actor_role),
            ("support_agent", situation.actor_is_support_agent),
            ("restricted", situation.restricted),
            ("invoices_in_purchases", situation.auto_add),
        )
        if not all(name not in who or value in who[name] for name, value in checks):
            return False
        other = who.get("other_user")
        if other is None:
            return True
        if situation.resource_type not in ("PaymentMethod", "Membership"):
            return False
        return all(
            name not in other or value in other[name]
            for name, value in (
                ("is_the_user", situation.other_user_is_actor),
                ("role", situation.other_user_role),
                ("support_agent", situation.other_user_is_support_agent),
            )
        )


@dataclass
class Verdict:
    property: Property
    counterexamples: list[str] = field(default_factory=list)

    @property
    def holds(self) -> bool:
        return not self.counterexamples


def load_properties(path: Path | str = PROPERTIES_PATH) -> list[Property]:
    """The properties of the file, validated (PropertyFileError names what is wrong)."""
    try:
        document = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as error:
        raise PropertyFileError(f"cannot read {path}: {error}") from error
    if not isinstance(document, list):
        raise PropertyFileError(f"{path}: a list of properties is expected")
    return [_property(entry, index) for index, entry in enumerate(document, start=1)]


def _property(entry: Any, index: int) -> Property:
    where = f"property {index}"
    if not isinstance(entry, dict) or not isinstance(entry.get("property"), str):
        raise PropertyFileError(f"{where}: needs `property` (its name)")
    where = f"property {entry['property']!r}"
    unknown = set(entry) - {"property", "says", "who", "never", "always"}
    if unknown:
        raise PropertyFileError(f"{where}: unknown keys {sorted(unknown)}")
    if "never" not in entry and "always" not in entry:
        raise PropertyFileError(f"{where}: needs `never` or `always`")
    return Property(
        name=entry["property"],
        says=str(entry.get("says", "")),
        who=_who(entry.get("who") or {}, where),
        never=_actions(entry.get("never") or {}, where),
        always=_actions(entry.get("always") or {}, where),
    )


def _who(who: Any, where: str) -> dict[str, Any]:
    if not isinstance(who, dict) or set(who) - _WHO_KEYS:
        raise PropertyFileError(f"{where}: `who` takes {sorted(_WHO_KEYS)}")
    found: dict[str, Any] = {}
    for name, value in who.items():
        if name == "other_user":
            if not isinstance(value, dict) or set(value) - _OTHER_KEYS:
                raise PropertyFileError(f"{where}: `other_user` takes {sorted(_OTHER_KEYS)}")
            found[name] = {key: _values(key, item, where) for key, item in value.items()}
        else:
            found[name] = _values(name, value, where)
    return found


def _values(name: str, value: Any, where: str) -> frozenset:
    values = value if isinstance(value, list) else [value]
    if name == "role":
        if not all(isinstance(v, str) and v in _ROLE_NAMES for v in values):
            raise PropertyFileError(f"{where}: role must be among {sorted(_ROLE_NAMES)}, not {value!r}")
        return frozenset(_ROLE_NAMES[v] for v in values)
    if not all(isinstance(v, bool) for v in values):
        raise PropertyFileError(f"{where}: {name} must be true or false, not {value!r}")
    return frozenset(values)


def _actions(actions: Any, where: str) -> dict[str, tuple[str, ...]]:
    if not isinstance(actions, dict):
        raise PropertyFileError(f"{where}: `never` and `always` map a resource type to its actions")
    found = {}
    for resource_type, names in actions.items():
        if resource_type not in RESOURCE_TYPES:
            raise PropertyFileError(f"{where}: unknown resource type {resource_type!r}")
        if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
            raise PropertyFileError(f"{where}: {resource_type} needs a list of actions")
        found[resource_type] = tuple(names)
    return found


def prove(policy: Policy, properties: list[Property], limit: int = 3) -> list[Verdict]:
    """Check every property in every situation of the policy's table; up to `limit` counterexamples each."""
    verdicts = []
    situations = sorted(policy.table, key=_order)
    for prop in properties:
        verdict = Verdict(prop)
        for situation in situations:
            if len(verdict.counterexamples) >= limit:
                break
            if not prop.applies(situation):
                continue
            granted = policy.allowed_actions(situation)
            for action in prop.never.get(situation.resource_type, ()):
                if action in granted:
                    verdict.counterexamples.append(decision_words(situation, action, True))
            for action in prop.always.get(situation.resource_type, ()):
                if action not in granted:
                    verdict.counterexamples.append(decision_words(situation, action, False))
        verdicts.append(verdict)
    return verdicts


def _order(situation: Situation) -> tuple:
    """Plain situations first (no ids named, members before non-members): the simplest counterexample first."""
    roles = [*ROLES, None]
    return (
        len(situation.ids),
        list(RESOURCE_TYPES).index(situation.resource_type),
        situation.actor_is_support_agent,
        roles.index(situation.actor_role),
        situation.restricted,
        not situation.auto_add,
        situation.ids,
        not situation.other_user_is_actor,
        roles.index(situation.other_user_role),
        situation.other_user_is_support_agent,
    )


def report(verdicts: list[Verdict]) -> str:
    """PASS / FAIL per property, counterexamples under each failure, a count at the end."""
    lines = []
    for verdict in verdicts:
        lines.append(f"{'PASS' if verdict.holds else 'FAIL'}  {verdict.property.name}")
        for example in verdict.counterexamples:
            lines.append(f"      counterexample: {example}")
    held = sum(verdict.holds for verdict in verdicts)
    lines.append(f"\n{held} of {len(verdicts)} properties hold")
    return "\n".join(lines)
