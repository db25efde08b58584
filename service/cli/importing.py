"""`authz import FILE`: an existing product's accounts, members and support agents, loaded in bulk (SPEC "Bulk import")."""

from __future__ import annotations

import sys

import click

from service.cli.common import fail


@click.command("import")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--by", default="import", show_default=True, help="who the change log names for every imported fact")
@click.option(
    "--chunk-accounts", default=5_000, show_default=True, type=click.IntRange(1, 100_000),
    help="accounts written per transaction (memory grows with it, not with the file)",
)
def import_file(file: str, by: str, chunk_accounts: int) -> None:
    """Import NDJSON facts (FILE, or - for standard input): each account whole or not at all.

    Exit 0 when everything was imported (or already was, identical), 1 when something was
    rejected (each rejection on standard error, with its line numbers and reasons), 2 when
    nothing could be read.
    """
    from models.database import Database
    from models.errors import StorageError
    from service.core.bulk_import import NothingReadable, import_facts
    from service.core.inputs import ID_RULE, is_id

    if not is_id(by):
        fail(f"--by must be {ID_RULE}")
    try:
        stream = sys.stdin.buffer if file == "-" else open(file, "rb")  # noqa: SIM115 (closed below)
    except OSError as error:
        fail(f"cannot read {file}: {error.strerror}")
    db = Database()
    advice = None
    try:
        db.migrate()
        report = import_facts(
            db, stream, by=by, chunk_accounts=chunk_accounts,
            on_rejection=lambda rejection: click.echo(str(rejection), err=True),
        )
        advice = db.memory_warning() if report.changed else None
    except NothingReadable as error:
        fail(str(error))
    except (OSError, StorageError) as error:
        fail(f"import stopped: {error}; chunks committed before it stay imported: run the same file again to finish")
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
        db.dispose()
    click.echo(report.summary())
    if advice is not None:
        click.echo(f"warning: {advice}", err=True)
    if report.rejected:
        click.echo(report.summary(), err=True)
        sys.exit(1)


COMMANDS = (import_file,)
