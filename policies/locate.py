"""Naming the rule, and its line, that made a policy be refused.

An attribute oso cannot read fails inside oso, whose error says in which rule
and at which line. A use of an id that the compiler refuses (comparing a
user's id with an account's, ordering ids) is seen from Python, outside oso's
view of the rules: the evaluation is then replayed once with oso's trace on,
and the innermost rule still being evaluated when the use happened is read
from that trace. Only refusals pay for this; it never runs for a policy that loads.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import threading

from oso import Oso, Variable

from policies.ids import Observer, UnsupportedUse
from policies.reader import statements
from policies.situations import IdPattern, Situation, build_world
from policies.world import POLAR_CLASSES

_IN_RULE = re.compile(r"in rule (?P<rule>\w+) at line (?P<line>\d+)")
_TRACE_LINE = re.compile(r"^(?P<indent>\[oso\]\[\w+\] *)(?P<text>.*)$")  # indent: the text's column
_APPLICABLE = re.compile(r"^(?P<head>.*) at line (?P<line>\d+), column \d+$")
_TRACING = threading.Lock()  # oso reads POLAR_LOG when an instance is created


def locate_error(message: str) -> tuple[str | None, int | None]:
    """The innermost rule oso's error names (its trace lists the most recent evaluation last)."""
    found = _IN_RULE.findall(message)
    if not found:
        return None, None
    rule, line = found[-1]
    return rule, int(line)


def locate_use(text: str, situation: Situation, pattern: IdPattern, elsewhere: bool) -> tuple[str | None, int | None]:
    """Replay one evaluation with oso's trace and name the rule being evaluated when the id was misused."""
    trace = io.StringIO()
    # oso reads POLAR_LOG as instances and queries are made: set only while this replay runs.
    with _TRACING, contextlib.redirect_stdout(trace), contextlib.redirect_stderr(io.StringIO()):
        previous = os.environ.get("POLAR_LOG")
        os.environ["POLAR_LOG"] = "trace"
        try:
            oso = Oso()
            for cls in POLAR_CLASSES:
                oso.register_class(cls)
            oso.load_str(text)
            actor, resource = build_world(situation, observer=Observer(pattern=dict(pattern)), elsewhere=elsewhere)
            for _ in oso.query_rule("allow", actor, Variable("action"), resource):
                pass
        except UnsupportedUse:
            pass
        except Exception:  # noqa: BLE001 - only looking for a location; the caller reports the refusal
            return None, None
        finally:
            if previous is None:
                os.environ.pop("POLAR_LOG", None)
            else:
                os.environ["POLAR_LOG"] = previous
    return innermost_rule(trace.getvalue())


def innermost_rule(trace: str) -> tuple[str | None, int | None]:
    """In an oso trace that stops where evaluation stopped, the rule whose body was being evaluated.

    Walking back from the end, a rule is still open if everything printed after
    its `RULE:` line is indented deeper than it (its body); a rule that already
    returned is followed by its caller's goals at a shallower depth.
    """
    lines = []
    for raw in trace.splitlines():
        match = _TRACE_LINE.match(raw)
        if match:
            lines.append((len(match["indent"]), match["text"]))
    shallowest = None
    for index in range(len(lines) - 1, -1, -1):
        indent, body = lines[index]
        if body.startswith("RULE: ") and (shallowest is None or indent < shallowest):
            head = body[len("RULE: "):].split(" if ", 1)[0].rstrip(";")
            return _rule_line(lines[:index], indent, head)
        shallowest = indent if shallowest is None else min(shallowest, indent)
    return None, None


def _rule_line(before: list[tuple[int, str]], indent: int, head: str) -> tuple[str | None, int | None]:
    name = head.split("(", 1)[0]
    for entry_indent, body in reversed(before):
        if entry_indent < indent:
            break
        match = _APPLICABLE.match(body)
        if match and match["head"] == head:
            return name, int(match["line"])
    return name, None


def culprit_reading_memberships(text: str, situation: Situation) -> tuple[str | None, int | None]:
    """The rule whose answer rests on a membership elsewhere: the one that, made to fail, removes the dependence.

    Such a dependence is no single operation oso could point at, so each rule
    that reads memberships is made to fail in turn (its body replaced by a
    condition that fails first, the line count kept) until the answers with and without
    a membership elsewhere agree.
    """
    lines = text.splitlines()
    for statement in statements(text):
        if "memberships" not in statement.text or " if " not in statement.text:
            continue
        head, body = statement.text.split(" if ", 1)
        failing = [
            *lines[: statement.line - 1], f"{head} if 1 = 0 and ({body.rstrip(';')});",
            *[""] * (statement.last - statement.line),
        ]
        try:
            oso = Oso()
            for cls in POLAR_CLASSES:
                oso.register_class(cls)
            with contextlib.redirect_stdout(io.StringIO()):  # unused-variable warnings of the failing head
                oso.load_str("\n".join(failing + lines[statement.last :]))
            answers = []
            for elsewhere in (True, False):
                actor, resource = build_world(situation, observer=Observer(), elsewhere=elsewhere)
                answers.append({r["bindings"]["action"] for r in oso.query_rule("allow", actor, Variable("action"), resource)})
        except Exception:  # noqa: BLE001 - this rule cannot be made to fail alone; try the next
            continue
        if answers[0] == answers[1]:
            return statement.name, statement.line
    return None, None
