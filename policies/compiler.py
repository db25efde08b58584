"""Compiling a policy into its decision table, and refusing what the table could not carry exactly.

For every situation (`situations.py`), oso evaluates the policy on a world
whose ids are symbolic (`ids.py`): what the policy does with an id is
recorded. The table then holds oso's answer for:

- every situation, with ids equal to none of the policy's literals;
- every pattern of literals the policy was seen to compare ids with
  (`user.id = "u_fired"`): each comparison seen is tried again the other way,
  until no new comparison appears. A decision whose ids equal some literal is
  looked up (or evaluated once, then kept) under that pattern.

Every user also holds a membership on another account while compiling. The
answer must not change because of it: if an answer rests on it, the policy is
evaluated again without it and the two must agree. A policy that reads the
role of a membership elsewhere, a fact not stored, calls a method on an id,
orders ids or compares a user's id with an account's is refused, naming the
rule and its line: the service never enforces something other than the file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace

from oso import Oso, Variable
from polar.exceptions import OsoError as PolarError

from policies.ids import Observer, UnsupportedUse
from policies.locate import culprit_reading_memberships, locate_error, locate_use
from policies.reader import statements
from policies.situations import IdPattern, Situation, all_situations, build_world, id_slots
from policies.world import RESOURCE_TYPES

MAX_PATTERNS_PER_SITUATION = 256  # a policy comparing ids with more literals than this is refused


class PolicyError(Exception):
    """The policy could not be loaded or compiled."""


class UnsoundPolicy(PolicyError):
    """The policy reads something the service's compiled form cannot carry; it is refused.

    `line` and `rule` name where, when oso's evaluation could tell.
    """

    def __init__(self, source_name: str, reason: str, rule: str | None = None, line: int | None = None) -> None:
        where = f"{source_name} line {line} (rule {rule})" if line is not None else source_name
        super().__init__(
            f"{where}: {reason}. The service decides from the stored facts only (roles on the account, support "
            "agents, the two billing settings, and ids compared with literals); it refuses this policy rather than "
            "enforce something other than the file"
        )
        self.reason = reason
        self.rule = rule
        self.line = line


@dataclass(frozen=True)
class Evaluation:
    actions: frozenset[str]
    compared: frozenset[tuple[str, str]]
    elsewhere_used: bool


@dataclass
class Compiled:
    table: dict[Situation, frozenset[str]]
    literals: dict[str, frozenset[str]]  # id slot -> the literals the policy compares it with


def evaluate(
    oso: Oso, situation: Situation, pattern: IdPattern = (), elsewhere: bool = True, text: str = "", source: str = ""
) -> Evaluation:
    """oso's answer in `situation` with ids as `pattern` says, and what the evaluation did with the ids."""
    observer = Observer(pattern=dict(pattern))
    actor, resource = build_world(situation, observer=observer, elsewhere=elsewhere)
    actions: set[str] = set()
    try:
        for result in oso.query_rule("allow", actor, Variable("action"), resource):
            if observer.memberships_elsewhere_alive:
                observer.elsewhere_used = True
            action = result["bindings"]["action"]
            if isinstance(action, Variable):
                raise UnsoundPolicy(source, f"an allow rule grants every action on {situation.resource_type}")
            if not isinstance(action, str):
                raise UnsoundPolicy(source, f"an allow rule grants {action!r}, which is not an action's name")
            actions.add(action)
    except UnsupportedUse as use:
        rule, line = locate_use(text, situation, pattern, elsewhere)
        raise UnsoundPolicy(source, f"it {use}", rule, line) from None
    except PolarError as error:
        rule, line = locate_error(str(error))
        raise UnsoundPolicy(source, _polar_reason(error), rule, line) from None
    if observer.memberships_elsewhere_alive:  # an iteration was cut while on the membership elsewhere
        observer.elsewhere_used = True
    return Evaluation(frozenset(actions), frozenset(observer.compared), observer.elsewhere_used)


def compile_policy(oso: Oso, text: str, source: str) -> Compiled:
    """The decision table of the policy loaded in `oso`; UnsoundPolicy when it cannot be exact."""
    table: dict[Situation, frozenset[str]] = {}
    literals: dict[str, set[str]] = {}
    always_without = negation_reaches_memberships(text)
    for resource_type in RESOURCE_TYPES:
        for base in all_situations(resource_type):
            for pattern, actions in _explore(oso, base, text, source, always_without).items():
                table[replace(base, ids=pattern)] = actions
    for situation in table:
        for slot, literal in situation.ids:
            literals.setdefault(slot, set()).add(literal)
    return Compiled(table, {slot: frozenset(values) for slot, values in literals.items()})


def _explore(
    oso: Oso, base: Situation, text: str, source: str, always_without: bool
) -> dict[IdPattern, frozenset[str]]:
    """oso's answers in `base` for every id pattern its evaluations branch on.

    Each answer is checked against the membership elsewhere: evaluated again
    without it when it may have rested on it (or always, `always_without`).
    """
    evaluated: dict[IdPattern, Evaluation] = {}
    pending: list[IdPattern] = [()]
    while pending:
        pattern = pending.pop()
        if pattern in evaluated:
            continue
        if len(evaluated) >= MAX_PATTERNS_PER_SITUATION:
            raise UnsoundPolicy(source, f"it compares ids with more than {MAX_PATTERNS_PER_SITUATION} literals at once")
        evaluation = evaluated[pattern] = evaluate(oso, base, pattern, text=text, source=source)
        assigned = dict(pattern)
        for slot, literal in evaluation.compared:
            if slot in assigned or not _consistent(base, assigned, slot, literal):
                continue
            pending.append(tuple(sorted({**assigned, slot: literal}.items())))
    answers: dict[IdPattern, frozenset[str]] = {}
    for pattern, evaluation in evaluated.items():
        if evaluation.elsewhere_used or always_without:  # the membership elsewhere must not matter
            without = evaluate(oso, base, pattern, elsewhere=False, text=text, source=source).actions
            if evaluation.actions != without:
                raise _depends_on_elsewhere(source, text, base, evaluation.actions, without)
        answers[pattern] = evaluation.actions
    return answers


def _depends_on_elsewhere(source: str, text: str, base: Situation, with_it, without) -> UnsoundPolicy:
    rule, line = culprit_reading_memberships(text, base)
    return UnsoundPolicy(
        source,
        f"an answer on {base.resource_type} depends on whether the user belongs to other accounts "
        f"(with a membership elsewhere: {_actions(with_it)}; without: {_actions(without)}); a rule reading "
        "memberships must compare membership.account_id with the account in question",
        rule,
        line,
    )


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_CALL = re.compile(r"\b(\w+)\s*\(")
_NEGATION = re.compile(r"\b(not|forall|cut)\b")


def negation_reaches_memberships(text: str) -> bool:
    """Whether a `not`, `forall` or `cut` may reach an iteration of memberships (conservatively).

    Seen from outside oso, a membership elsewhere that a negated condition
    found looks like one that failed: the world iterates memberships lazily
    and counts the one elsewhere alive while the policy holds it, which tells
    whether a granted action rested on it, but not whether a negation did.
    For such policies every answer is evaluated with and without it.
    """
    bodies: dict[str, list[str]] = {}
    shorthand = False
    for statement in statements(text):
        if statement.name.endswith(" block"):
            shorthand = True
            continue
        body = _STRING.sub('""', statement.text.split(" if ", 1)[1]) if " if " in statement.text else ""
        bodies.setdefault(statement.name, []).append(body)
    reaching = {name for name, texts in bodies.items() if any("memberships" in body for body in texts)}
    growing = True
    while growing:
        if shorthand and reaching & {"has_role", "has_relation"}:
            reaching.add("has_permission")  # resource blocks' shorthand rules are has_permission rules
        before = len(reaching)
        reaching |= {
            name for name, texts in bodies.items() if any(set(_CALL.findall(body)) & reaching for body in texts)
        }
        growing = len(reaching) > before
    for texts in bodies.values():
        for body in texts:
            for negation in _NEGATION.finditer(body):
                region = body[negation.start():]
                if "memberships" in region or set(_CALL.findall(region)) & reaching:
                    return True
    return False


def _consistent(base: Situation, assigned: dict[str, str], slot: str, literal: str) -> bool:
    """Whether an id may equal `literal` given the others: two different users never share an id."""
    if slot not in id_slots(base):
        return False
    users = {"actor", "other_user"}
    if slot in users:
        return all(assigned.get(other) != literal for other in users - {slot})
    return True


def evaluate_pattern(oso: Oso, situation: Situation) -> frozenset[str]:
    """oso's answer in a situation whose id pattern the table lacks (equivalent to one it has)."""
    return evaluate(oso, replace(situation, ids=()), situation.ids, elsewhere=False).actions


def _actions(actions: Iterable[str]) -> str:
    return ", ".join(sorted(actions)) or "nothing"


_APPLICATION_ERROR = re.compile(r"Application error: (?P<detail>.*?) at line \d+, column \d+:\n\t\d+: *(?P<code>.*)")
_NO_ATTRIBUTE = re.compile(r"'(?P<owner>\w+)' object has no attribute '(?P<attribute>\w+)'")


def _polar_reason(error: PolarError) -> str:
    """What went wrong while oso evaluated the policy, in a sentence that quotes the code."""
    text = str(error)
    application = _APPLICATION_ERROR.search(text)
    if application is None:
        first = next((line.strip() for line in text.splitlines() if line.strip() and not line.startswith("trace")), "")
        return f"evaluating it failed: {first}"
    detail, code = application["detail"], application["code"].strip()
    missing = _NO_ATTRIBUTE.fullmatch(detail)
    if missing:
        return f"it reads `{missing['attribute']}` of a {missing['owner']} (`{code}`), which the service does not store"
    return f"it {detail} (`{code}`)"


__all__ = ["PolicyError", "UnsoundPolicy", "Compiled", "compile_policy", "evaluate", "evaluate_pattern"]
