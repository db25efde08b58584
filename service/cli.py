"""`authz`: what an operator or an auditor does by hand.

serve, migrate, keys (create, list, revoke), check and explain one decision,
matrix, test (the scenarios), prove (the properties), policy check and diff,
changes (list, verify).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import click

from service.core.consistency import Consistency
from service.core.errors import ANSWERED


def _runtime():
    from service.core.runtime import Runtime

    # Decide as the service does: with the policy the change log records, never recording another.
    return Runtime.build({"ADOPT_POLICY_FILE": False})


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


@click.group()
def main() -> None:
    """The authorization service of the accounting product: policy as code, served over HTTP."""


@main.command()
@click.option("--host", default=lambda: os.environ.get("AUTHZ_HOST", "127.0.0.1"), show_default="127.0.0.1")
@click.option("--port", default=lambda: int(os.environ.get("PORT", "8000")), type=int, show_default="$PORT or 8000")
@click.option("--workers", default=lambda: int(os.environ.get("AUTHZ_WORKERS", "2")), type=int, show_default="2")
def serve(host: str, port: int, workers: int) -> None:
    """Serve the API with gunicorn (the app migrates the database as it loads)."""
    metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not metrics_dir:
        metrics_dir = tempfile.mkdtemp(prefix="authz-metrics-")
    else:
        shutil.rmtree(metrics_dir, ignore_errors=True)
        Path(metrics_dir).mkdir(parents=True)
    os.environ.update(
        PROMETHEUS_MULTIPROC_DIR=metrics_dir, AUTHZ_HOST=host, PORT=str(port), AUTHZ_WORKERS=str(workers)
    )
    config = str(Path(__file__).with_name("gunicorn_conf.py"))
    os.execv(sys.executable, [sys.executable, "-m", "gunicorn", "--config", config, "service.wsgi:app"])


@main.command()
def migrate() -> None:
    """Create the schema, or bring it to the latest migration."""
    from models.database import Database

    db = Database()
    db.migrate()
    click.echo(f"database ready: {db.engine.url.render_as_string(hide_password=True)}")


@main.group()
def keys() -> None:
    """API keys of calling services."""


@keys.command("create")
@click.option("--name", required=True, help="which service the key is for")
@click.option("--scopes", default="check", show_default=True, help="comma-separated: check, write, audit, admin")
def keys_create(name: str, scopes: str) -> None:
    """Create a key; it is printed once and only its hash is stored."""
    from models.database import Database
    from service.core.api_keys import create_key

    db = Database()
    db.migrate()
    try:
        key_id, key = create_key(db, name, [s.strip() for s in scopes.split(",") if s.strip()])
    except ValueError as error:
        _fail(str(error))
    click.echo(key)
    click.echo(f"key id {key_id}, scopes {scopes}; store it now, it cannot be shown again", err=True)


@keys.command("list")
def keys_list() -> None:
    from models.database import Database
    from service.core.api_keys import list_keys

    for key in list_keys(Database()):
        state = f"revoked {key['revoked_at']}" if key["revoked_at"] else "active"
        click.echo(f"{key['id']}  {key['name']}  scopes={key['scopes']}  created {key['created_at']}  {state}")


@keys.command("revoke")
@click.argument("key_id")
def keys_revoke(key_id: str) -> None:
    """Revoke a key; every process refuses it from the next revision on."""
    from models.database import Database
    from service.core.api_keys import revoke_key

    try:
        revoke_key(Database(), key_id)
    except ANSWERED as error:
        _fail(error.message)
    click.echo(f"revoked {key_id}")


def _resource(resource_type: str, attributes: tuple[str, ...]) -> dict:
    from service.core.inputs import RESOURCE_SCHEMAS

    resource: dict[str, str] = {"type": resource_type}
    for attribute in attributes:
        name, sep, value = attribute.partition("=")
        if not sep:
            _fail(f"attribute {attribute!r} must be NAME=VALUE")
        resource[name] = value
    if resource_type not in RESOURCE_SCHEMAS:
        _fail(f"unknown resource type {resource_type}; known: {', '.join(RESOURCE_SCHEMAS)}")
    errors = RESOURCE_SCHEMAS[resource_type].validate(resource)
    if errors:
        _fail(f"{resource_type}: {errors}")
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


@main.command()
@_decision_command
def check(user: str, action: str, resource_type: str, attributes: tuple[str, ...], as_of_revision: int | None) -> None:
    """Decide once: `authz check u_client view_subscription Account id=acc_b`. Exit 0 allowed, 1 denied."""
    runtime = _runtime()
    try:
        answer = runtime.authorizer.authorize(
            user, action, _resource(resource_type, attributes), consistency=Consistency.of(as_of_revision=as_of_revision)
        )
    except ANSWERED as error:
        _fail(error.message)
    click.echo(f"{'allowed' if answer['allowed'] else 'denied'} (revision {answer['revision']})")
    sys.exit(0 if answer["allowed"] else 1)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="print the explanation as JSON")
@_decision_command
def explain(
    user: str, action: str, resource_type: str, attributes: tuple[str, ...], as_json: bool, as_of_revision: int | None
) -> None:
    """Explain one decision in business words: the facts, the rules, what would change it."""
    runtime = _runtime()
    try:
        answer = runtime.authorizer.authorize(
            user, action, _resource(resource_type, attributes),
            consistency=Consistency.of(as_of_revision=as_of_revision), explain=True,
        )
    except ANSWERED as error:
        _fail(error.message)
    if as_json:
        click.echo(json.dumps(answer, indent=2))
        return
    explanation = answer["explanation"]
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


@main.command()
@click.option("--html", "as_html", is_flag=True, help="a standalone HTML page instead of Markdown")
@click.option("--policy", "policy_file", type=click.Path(exists=True, dir_okay=False), help="another policy file")
def matrix(as_html: bool, policy_file: str | None) -> None:
    """Print the permission matrix, generated by evaluating the policy."""
    from policies.matrix import to_html, to_markdown

    click.echo((to_html if as_html else to_markdown)(_load(policy_file)), nl=False)


@main.command("test")
@click.option("--policy", "policy_file", type=click.Path(exists=True, dir_okay=False), help="another policy file")
def test_scenarios(policy_file: str | None) -> None:
    """Run every scenario of policies/scenarios against the policy. Exit 0 all pass, 1 otherwise."""
    from service.core.scenarios import report, run_all

    results = run_all(_load(policy_file))
    click.echo(report(results))
    sys.exit(0 if all(result.passed for result in results) else 1)


@main.group()
def policy() -> None:
    """The policy file."""


@policy.command("check")
@click.argument("policy_file", type=click.Path(exists=True, dir_okay=False))
def policy_check(policy_file: str) -> None:
    """Validate a policy: it loads, every scenario passes and every property holds. Exit 0 valid, 1 not."""
    from policies.properties import load_properties, prove
    from policies.properties import report as properties_report
    from service.core.scenarios import report, run_all

    policy = _load(policy_file)
    click.echo(f"{policy_file} loads (sha256 {policy.sha256}); running the scenarios against it")
    results = run_all(policy)
    click.echo(report(results))
    click.echo("\nProving the properties of policies/properties.yaml")
    verdicts = prove(policy, _properties(load_properties))
    click.echo(properties_report(verdicts))
    sys.exit(0 if all(r.passed for r in results) and all(v.holds for v in verdicts) else 1)


@policy.command("diff")
@click.argument("old")
@click.argument("new")
@click.option("--json", "as_json", is_flag=True, help="the changes as JSON, for machines")
def policy_diff(old: str, new: str, as_json: bool) -> None:
    """Every decision that changes from OLD to NEW (each a file, or git:REV for policy.polar at a revision).

    Exit 0 when no decision changes, 1 when some do, 2 on error (as diff(1)).
    """
    from policies.diff import diff, report
    from policies.engine import PolicyError, policy_from_text

    try:
        before = policy_from_text(_policy_text(old), _source_name(old))
        after = policy_from_text(_policy_text(new), _source_name(new))
    except PolicyError as error:
        _fail(str(error))
    changes = diff(before, after)
    if as_json:
        document = {"old": before.sha256, "new": after.sha256, "changes": [change.document() for change in changes]}
        click.echo(json.dumps(document, indent=2))
    else:
        click.echo(f"{old} ({before.sha256[:12]}) -> {new} ({after.sha256[:12]})")
        click.echo(report(changes))
    sys.exit(1 if changes else 0)


def _policy_text(where: str) -> str:
    """A policy's text: a file, or `git:REV` (policy.polar at that revision of this repository)."""
    import subprocess

    if where.startswith("git:"):
        revision = where[len("git:"):]
        root = Path(__file__).resolve().parent.parent
        try:
            shown = subprocess.run(
                ["git", "-C", str(root), "show", f"{revision}:policy.polar"], capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            _fail(f"cannot run git: {error}")
        if shown.returncode != 0:
            _fail(f"no policy.polar at git revision {revision!r}: {shown.stderr.strip()}")
        return shown.stdout
    try:
        return Path(where).read_text()
    except OSError as error:
        _fail(f"cannot read {where}: {error}")
    return ""


def _source_name(where: str) -> str:
    return where if where.startswith("git:") else Path(where).name


def _properties(load):
    from policies.properties import PropertyFileError

    try:
        return load()
    except PropertyFileError as error:
        _fail(str(error))


@main.command()
@click.argument("policy_file", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("--properties", "properties_file", type=click.Path(exists=True, dir_okay=False),
              help="another properties file (default: policies/properties.yaml)")
def prove(policy_file: str | None, properties_file: str | None) -> None:
    """Prove the policy's properties over every situation; a counterexample for each failure. Exit 0 all hold, 1 not."""
    from policies.properties import PROPERTIES_PATH, load_properties, report
    from policies.properties import prove as prove_properties

    policy = _load(policy_file)
    verdicts = prove_properties(policy, _properties(lambda: load_properties(properties_file or PROPERTIES_PATH)))
    click.echo(f"{policy_file or 'policy.polar'} (sha256 {policy.sha256[:12]}): {len(policy.table)} situations")
    click.echo(report(verdicts))
    sys.exit(0 if all(verdict.holds for verdict in verdicts) else 1)


def _load(policy_file: str | None):
    from policies.engine import PolicyError, load_policy

    try:
        return load_policy(policy_file)
    except PolicyError as error:
        click.echo(f"the policy does not load: {error}", err=True)
        sys.exit(1)


@main.group()
def changes() -> None:
    """The change log."""


@changes.command("list")
@click.option("--account", default=None)
@click.option("--after", default=0, type=int)
@click.option("--limit", default=1000, type=int)
def changes_list(account: str | None, after: int, limit: int) -> None:
    runtime = _runtime()
    entries, _revision = runtime.store.changes(account=account, after=after, limit=limit)
    for entry in entries:
        if "text" in entry["after"]:  # a recorded policy: its sha256 says which, the text is long
            entry["after"]["text"] = f"<{len(entry['after']['text'])} characters>"
        who = entry["acting_user"] or "system"
        click.echo(
            f"{entry['revision']:>6}  {entry['at']}  {entry['kind']:<24} account={entry['account']} "
            f"user={entry['user']} by={who} key={entry['api_key']}  {json.dumps(entry['before'])} -> "
            f"{json.dumps(entry['after'])}"
        )


@changes.command("verify")
def changes_verify() -> None:
    """Check the hash chain of the whole log, then the fact tables against it. Exit 0 intact, 1 tampered."""
    runtime = _runtime()
    result = runtime.store.verify_changes()
    if result.ok:
        click.echo(f"intact: {result.entries} entries, revisions 1 to {result.revision}")
        return
    where = f" at revision {result.first_bad_revision}" if result.first_bad_revision is not None else ""
    click.echo(f"TAMPERED{where}: {result.problem}")
    for difference in result.drift:
        click.echo(f"  - {difference}")
    sys.exit(1)
