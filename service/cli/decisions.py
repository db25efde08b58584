"""One decision by hand: `authz check` (exit 0 allowed, 1 denied) and `authz explain`, now or as of a revision."""

from __future__ import annotations

import json
import sys

import click

from service.cli.common import build_runtime, fail
from service.core.consistency import Consistency
from service.core.errors import ANSWERED


def _resource(resource_type: str, attributes: tuple[str, ...]) -> dict:
    from service.core.inputs import RESOURCE_SCHEMAS

    resource: dict[str, str] = {"type": resource_type}
    for attribute in attributes:
        name, sep, value = attribute.partition("=")
        if not sep:
            fail(f"attribute {attribute!r} must be NAME=VALUE")
        resource[name] = value
    if resource_type not in RESOURCE_SCHEMAS:
        fail(f"unknown resource type {resource_type}; known: {', '.join(RESOURCE_SCHEMAS)}")
    errors = RESOURCE_SCHEMAS[resource_type].validate(resource)
    if errors:
        fail(f"{resource_type}: {errors}")
    return resource


_decision_arguments = [
    click.option("--as-of-revision", type=int, default=None, help="decide as of this past revision"),
    click.argument("user"),
    click.argument("action"),
    click.argument("resource_type"),
    click.argument("attributes", nargs=-1),
]


def _decision_command(function):
    for decorator in reversed(_decision_arguments):
        function = decorator(function)
    return function


@click.command()
@_decision_command
def check(user: str, action: str, resource_type: str, attributes: tuple[str, ...], as_of_revision: int | None) -> None:
    """Decide once: `authz check u_client view_subscription Account id=acc_b`. Exit 0 allowed, 1 denied."""
    runtime = build_runtime()
    try:
        answer = runtime.authorizer.authorize(
            user, action, _resource(resource_type, attributes), consistency=Consistency.of(as_of_revision=as_of_revision)
        )
    except ANSWERED as error:
        fail(error.message)
    for warning in answer.get("warnings", ()):
        click.echo(f"WARNING: {warning}", err=True)
    click.echo(f"{'allowed' if answer['allowed'] else 'denied'} (revision {answer['revision']})")
    sys.exit(0 if answer["allowed"] else 1)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="print the explanation as JSON")
@_decision_command
def explain(
    user: str, action: str, resource_type: str, attributes: tuple[str, ...], as_json: bool, as_of_revision: int | None
) -> None:
    """Explain one decision in business words: the facts, the rules, what would change it."""
    runtime = build_runtime()
    try:
        answer = runtime.authorizer.authorize(
            user, action, _resource(resource_type, attributes),
            consistency=Consistency.of(as_of_revision=as_of_revision), explain=True,
        )
    except ANSWERED as error:
        fail(error.message)
    if as_json:
        click.echo(json.dumps(answer, indent=2))
        return
    explanation = answer["explanation"]
    for warning in answer["warnings"]:
        click.echo(f"WARNING: {warning}")
    click.echo(
        f"{'ALLOWED' if answer['allowed'] else 'DENIED'} at revision {answer['revision']}"
        f"{' (as of that revision)' if as_of_revision is not None else ''}, policy {answer['policy'][:12]}"
    )
    click.echo(explanation["summary"])
    click.echo("\nFacts:")
    for fact in explanation["facts"]:
        click.echo(f"  - {fact}")
    click.echo("\nRules of policy.polar that could grant it:")
    for rule in explanation["rules"]:
        click.echo(f"  line {rule['line']}: {rule['rule']}  [{'holds' if rule['holds'] else 'does not hold'}]")
        if rule["says"]:
            click.echo(f"      {rule['says']}")
    turning = explanation["would_be_allowed_if"] or explanation["would_be_denied_if"]
    if turning:
        click.echo("\nIt would be " + ("allowed" if not answer["allowed"] else "denied") + " if:")
        for change in turning:
            click.echo(f"  - {change}")


COMMANDS = (check, explain)
