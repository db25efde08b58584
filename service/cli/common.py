"""What every command shares: the core as the service builds it, failing with a message, loading a policy file."""

from __future__ import annotations

import sys

import click


def build_runtime():
    from service.core.runtime import Runtime

    # Decide as the service does: with the policy the change log records, never recording another.
    return Runtime.build({"ADOPT_POLICY_FILE": False})


def fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def load(policy_file: str | None):
    """The policy of `policy_file` (default: the policy file in use); exit 1 if it does not load."""
    from policies.engine import PolicyError, load_policy

    try:
        return load_policy(policy_file)
    except PolicyError as error:
        click.echo(f"the policy does not load: {error}", err=True)
        sys.exit(1)
