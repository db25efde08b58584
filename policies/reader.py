"""Reading `policy.polar` as an auditor does: its rules, where they are, and the sentence above each.

This is not a second evaluator: it only finds, for an explanation, the rules
that could grant an action on a resource type and the condition each one
states. Whether a condition holds is always asked to oso (`explain.py`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SHORTHAND = re.compile(r'^"(?P<permission>[^"]+)"\s+if\s+"(?P<role>[^"]+)"(?:\s+on\s+"(?P<relation>[^"]+)")?$')
_RESOURCE_BLOCK = re.compile(r"^resource\s+(?P<type>\w+)\s*\{")
_ACTOR_BLOCK = re.compile(r"^actor\s+\w+\s*\{\s*\}$")
_HAS_PERMISSION = re.compile(r"^has_permission\((?P<params>.*?)\)\s*if\s+(?P<body>.*)$", re.S)
_PARAM = re.compile(r'^\s*(?:"(?P<literal>[^"]*)"|(?P<name>\w+)\s*(?::\s*(?P<type>\w+))?)\s*$')


@dataclass(frozen=True)
class Statement:
    """One rule of the policy as written: its name, first line and text (comments removed)."""

    name: str
    line: int
    last: int
    text: str


def statements(text: str) -> list[Statement]:
    """Every rule of the policy, shorthand rules of resource blocks included, in file order."""
    found: list[Statement] = []
    current: list[str] = []
    first = 0
    block: str | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        code = _without_comment(raw).strip()
        if not code:
            continue
        if not current:
            opened = _RESOURCE_BLOCK.match(code) or _ACTOR_BLOCK.match(code)
            if opened or code.startswith(("resource ", "actor ")):
                block = code.split()[1]
                if code.endswith("}"):
                    block = None
                continue
            if code == "}":
                block = None
                continue
            first = number
        current.append(code)
        if code.endswith(";"):
            whole = " ".join(current)
            current = []
            if block is not None and whole.startswith('"'):
                found.append(Statement(f"{block} block", first, number, whole))
            elif block is None:
                found.append(Statement(whole.split("(", 1)[0].strip(), first, number, whole))
    return found


def _without_comment(line: str) -> str:
    """The line without its comment (a `#` outside a string literal)."""
    in_string = False
    for index, char in enumerate(line):
        if char == '"' and (index == 0 or line[index - 1] != "\\"):
            in_string = not in_string
        elif char == "#" and not in_string:
            return line[:index]
    return line


@dataclass(frozen=True)
class Param:
    name: str | None
    type: str | None
    literal: str | None


@dataclass(frozen=True)
class Rule:
    """A rule that grants a permission: a resource-block shorthand or a `has_permission` rule."""

    line: int
    text: str
    comment: str
    resource_type: str
    # shorthand: "permission" if "role" [on "relation"]
    permission: str | None = None
    role: str | None = None
    relation: str | None = None
    # has_permission(actor, action, resource) if body
    params: tuple[Param, ...] = ()
    body: str | None = None

    def may_grant(self, action: str) -> bool:
        if self.permission is not None:
            return self.permission == action
        action_param = self.params[1]
        if action_param.literal is not None:
            return action_param.literal == action
        return f'"{action}"' in (self.body or "")


def read_rules(text: str) -> list[Rule]:
    """Every permission-granting rule of the policy, in file order."""
    rules: list[Rule] = []
    comment: list[str] = []
    statement: list[str] = []
    statement_line = 0
    block_type: str | None = None
    after_statement = False  # a comment after a rule starts a new sentence
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not statement:
            if line.startswith("#"):
                if after_statement:
                    comment, after_statement = [], False
                comment.append(line.lstrip("#").strip())
                continue
            if not line:
                comment, after_statement = [], False
                continue
            block = _RESOURCE_BLOCK.match(line)
            if block:
                block_type = block["type"]
                comment = []
                continue
            if _ACTOR_BLOCK.match(line):
                continue
            if line == "}":
                block_type = None
                comment = []
                continue
            statement_line = number
        code = line.split("#", 1)[0].strip() if '"#' not in line else line
        statement.append(code)
        if not code.endswith(";"):
            continue
        whole = " ".join(part for part in statement if part)[:-1].strip()
        statement = []
        rule = _rule(whole, statement_line, " ".join(comment), block_type)
        if rule is not None:
            rules.append(rule)
        after_statement = True
    return rules


def _rule(whole: str, line: int, comment: str, block_type: str | None) -> Rule | None:
    if block_type is not None:
        shorthand = _SHORTHAND.match(whole)
        if shorthand is None:
            return None
        return Rule(line, whole + ";", comment, block_type, shorthand["permission"], shorthand["role"], shorthand["relation"])
    match = _HAS_PERMISSION.match(whole)
    if match is None:
        return None
    params = tuple(_param(part) for part in _split_params(match["params"]))
    if len(params) != 3 or params[2].type is None:
        return None
    return Rule(line, whole + ";", comment, params[2].type, params=params, body=match["body"].strip())


def _split_params(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts


def _param(text: str) -> Param:
    match = _PARAM.match(text)
    if match is None:
        return Param(None, None, None)
    return Param(match["name"], match["type"], match["literal"])
