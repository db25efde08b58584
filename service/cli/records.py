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
    from service.core.audit_queries import DecisionsQuery
    from service.core.decision_log import as_csv as decisions_csv
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


@click.command("access-review")
@click.option("--account", help="everyone who holds anything on this account, and what")
@click.option("--user", help="every account this user is a member of, with the role and what it grants")
@click.option("--json", "as_json", is_flag=True, help="the answer of GET /v1/access-review, as JSON")
@click.option("--csv", "as_csv", is_flag=True, help="CSV with a header row")
def access_review(account: str | None, user: str | None, as_json: bool, as_csv: bool) -> None:
    """Who holds what, from the policy's answers on the stored facts (--account ID or --user ID). Exit 2 on error."""
    from service.core import access_review as review
    from service.core.audit_queries import AccessReviewQuery
    from service.core.errors import ANSWERED
    from service.core.inputs import describe_validation_error

    if as_json and as_csv:
        fail("--json and --csv: choose one")
    try:
        query = AccessReviewQuery().load({name: value for name, value in (("account", account), ("user", user)) if value})
    except ValidationError as error:
        fail(describe_validation_error(error))
    runtime = build_runtime()
    runtime.cache.sync()
    try:
        if "account" in query:
            answer = review.review_account(runtime.db, runtime.policy(), query["account"])
        else:
            answer = review.review_user(runtime.db, runtime.policy(), query["user"])
    except ANSWERED as error:
        fail(error.message)
    if as_json:
        click.echo(json.dumps(answer, indent=2))
    elif as_csv:
        click.echo((review.account_csv if "account" in query else review.user_csv)(answer), nl=False)
    elif "account" in query:
        click.echo(f"account {answer['account']} at revision {answer['revision']}, policy {answer['policy'][:12]}")
        for subject in answer["subjects"]:
            role = subject["role"] or "not a member"
            click.echo(f"\n{subject['user']} ({role}{', support agent' if subject['support_agent'] else ''})")
            _print_actions(subject["actions"])
    else:
        support = ", support agent" if answer["support_agent"] else ""
        click.echo(f"user {answer['user']}{support} at revision {answer['revision']}, policy {answer['policy'][:12]}")
        for held in answer["accounts"]:
            click.echo(f"\n{held['account']} ({held['role']})")
            _print_actions(held["actions"])
        if answer.get("on_every_account"):
            click.echo("\non every account (support agent)")
            _print_actions(answer["on_every_account"])


def _print_actions(actions: dict[str, list]) -> None:
    for resource_type, entries in actions.items():
        words = [entry if isinstance(entry, str) else f"{entry['action']} ({entry['condition']})" for entry in entries]
        click.echo(f"  {resource_type}: {', '.join(words)}")


COMMANDS = (decisions, access_review)
