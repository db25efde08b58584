"""What an auditor asks by hand: the decision log (`authz decisions`) and the access review (`authz access-review`)."""

from __future__ import annotations

import json

import click
from marshmallow import ValidationError

from service.cli.common import build_runtime, fail


@click.command()
@click.option("--actor", help="the user who asked for (or was refused) something")
@click.option("--account", help="a resource's account, or an Account's id")
@click.option("--action")
@click.option("--allowed", type=click.Choice(["true", "false"]))
@click.option("--since", help="ISO 8601 date and time, inclusive (UTC unless an offset is given)")
@click.option("--until", help="ISO 8601 date and time, exclusive")
@click.option("--after", default="0", show_default=True, help="the id after which to start (the previous next_after)")
@click.option("--limit", default="100", show_default=True, help="at most this many (up to 1,000)")
@click.option("--json", "as_json", is_flag=True, help="the answer of GET /v1/decisions, as JSON")
@click.option("--csv", "as_csv", is_flag=True, help="CSV with a header row")
def decisions(as_json: bool, as_csv: bool, **filters: str | None) -> None:
    """The decision log, oldest first, with the filters of GET /v1/decisions. Exit 2 on a bad filter."""
    from service.core.decision_log import as_csv as decisions_csv
    from service.core.decision_query import DecisionsQuery
    from service.core.inputs import describe_validation_error

    if as_json and as_csv:
        fail("--json and --csv: choose one")
    try:
        query = DecisionsQuery().load({name: value for name, value in filters.items() if value is not None})
    except ValidationError as error:
        fail(describe_validation_error(error))
    page = build_runtime().decision_log.page(**query)
    if as_json:
        click.echo(json.dumps(page, indent=2))
        return
    if as_csv:
        click.echo(decisions_csv(page["decisions"]), nl=False)
        return
    for record in page["decisions"]:
        outcome = "allowed" if record["allowed"] else f"DENIED {record['code']}" if record["code"] else "denied"
        click.echo(
            f"{record['id']:>8}  {record['time']}  {record['actor'] or 'system':<16} {record['action'] or '-':<24} "
            f"{json.dumps(record['resource'], separators=(',', ':'))}  {outcome}  {record['endpoint']} "
            f"key={record['api_key']} revision={record['revision']}"
        )
    if page["next_after"] is not None:
        click.echo(f"more: --after {page['next_after']}", err=True)


COMMANDS = (decisions,)
