"""`authz`: what an operator or an auditor does by hand.

serve, migrate, keys (create, list, revoke), changes (list, verify): `operations.py`;
check and explain one decision: `decisions.py`; matrix, test (the scenarios), prove (the
properties), policy check and diff: `policy_file.py`; the decision log and the access review:
`records.py`; import in bulk: `importing.py`. The commands call the core, as the service does (`serve` starts the
service itself, by name: `service.wsgi:app`).
"""

from __future__ import annotations

import click

from service.cli import decisions, importing, operations, policy_file, records


@click.group()
def main() -> None:
    """The authorization service of the accounting product: policy as code, served over HTTP."""


for command in (
    *operations.COMMANDS, *importing.COMMANDS, *decisions.COMMANDS, *policy_file.COMMANDS, *records.COMMANDS
):
    main.add_command(command)
