"""Operating the service: serve, migrate, API keys (create, list, revoke), the change log (list, head, verify), cache drop."""

from __future__ import annotations

import json
import os
import sys

import click

from models.changelog import Who
from service.cli.common import build_runtime, fail
from service.core.errors import ANSWERED
from service.core.records import parse_anchor


@click.command()
@click.option("--host", default=lambda: os.environ.get("AUTHZ_HOST", "127.0.0.1"), show_default="127.0.0.1")
@click.option("--port", default=lambda: int(os.environ.get("PORT", "8000")), type=int, show_default="$PORT or 8000")
@click.option("--workers", default=lambda: int(os.environ.get("AUTHZ_WORKERS", "2")), type=int,
              show_default="$AUTHZ_WORKERS or 2", help="worker processes")
@click.option("--threads", default=lambda: int(os.environ.get("AUTHZ_THREADS", "2")), type=int,
              show_default="$AUTHZ_THREADS or 2", help="threads running the app in each worker")
def serve(host: str, port: int, workers: int, threads: int) -> None:
    """Serve the API with granian (the database is migrated and the policy taken up before the workers start)."""
    if workers < 1 or threads < 1:
        fail("--workers and --threads must be at least 1")
    os.environ.update(AUTHZ_HOST=host, PORT=str(port), AUTHZ_WORKERS=str(workers), AUTHZ_THREADS=str(threads))
    # In place: this process becomes the server's master (its pid is the one to send SIGHUP and SIGTERM to).
    os.execv(sys.executable, [sys.executable, "-m", "service.serving"])


@click.command()
def migrate() -> None:
    """Create the schema, or bring it to the latest migration."""
    from models.database import Database

    db = Database()
    db.migrate()
    click.echo(f"database ready: {db.engine.url.render_as_string(hide_password=True)}")


@click.group()
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
        fail(str(error))
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
        fail(error.message)
    click.echo(f"revoked {key_id}")




@click.group()
def changes() -> None:
    """The change log."""


@changes.command("list")
@click.option("--account", default=None)
@click.option("--after", default=0, type=int)
@click.option("--limit", default=1000, type=int)
def changes_list(account: str | None, after: int, limit: int) -> None:
    runtime = build_runtime()
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


@changes.command("head")
def changes_head() -> None:
    """Print `REVISION SHA256` of the latest entry: note it somewhere the database's writers cannot reach."""
    click.echo(str(_records().head()))


@changes.command("verify")
@click.option(
    "--expect", "expected", default=None, metavar="REVISION:SHA256",
    help="a head noted earlier (`authz changes head`): fail if that entry's hash is no longer this one",
)
def changes_verify(expected: str | None) -> None:
    """Check the hash chain of the whole log, then the fact tables against it. Exit 0 intact, 1 tampered.

    With AUTHZ_CHECKPOINT_KEY set, every signed checkpoint is checked too. The result is recorded:
    the auditor pages then check only the entries written since.
    """
    anchor = None
    if expected is not None:
        try:
            anchor = parse_anchor(expected)
        except ValueError as error:
            fail(str(error))
    result = _records().verify(expect=anchor)
    if result.ok:
        click.echo(f"intact: {result.entries} entries, revisions 1 to {result.revision}")
        click.echo(f"head {result.head}")
        return
    where = f" at revision {result.first_bad_revision}" if result.first_bad_revision is not None else ""
    click.echo(f"TAMPERED{where}: {result.problem}")
    for difference in result.drift:
        click.echo(f"  - {difference}")
    if result.drift_count > len(result.drift):
        click.echo(f"  ... and {result.drift_count - len(result.drift)} more differences")
    click.echo(f"head {result.head}")
    sys.exit(1)


@click.group()
def cache() -> None:
    """Every process's cache of facts."""


@cache.command("drop")
def cache_drop() -> None:
    """Make every process of the service drop its cached facts (after a repair made in the database).

    Recorded in the change log, which every worker follows: no restart needed.
    """
    runtime = build_runtime()
    try:
        revision = runtime.store.drop_cached_facts(Who(None, None))
    except ANSWERED as error:
        fail(error.message)
    click.echo(f"every process drops its cached facts at revision {revision}")


def _records():
    """The change log's records, without the policy: verifying reads storage only. With AUTHZ_CHECKPOINT_KEY, signed."""
    from models.database import Database
    from service.core.records import Records

    db = Database()
    db.migrate()
    return Records(db, os.environ.get("AUTHZ_CHECKPOINT_KEY"))


COMMANDS = (serve, migrate, keys, changes, cache)
