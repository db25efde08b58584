"""The layers hold where import-linter cannot look: the client alone, storage's copy of the policy's roles."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from models.tables import STORED_ROLES
from policies.world import ROLES

PROJECT = Path(__file__).resolve().parent.parent
SERVER_SIDE = ("flask", "werkzeug", "sqlalchemy", "alembic", "psycopg", "oso", "polar", "marshmallow", "apispec",
               "gunicorn", "granian", "prometheus_client", "yaml", "click")


def test_the_stored_roles_are_the_policys_roles():
    """The schema's CHECK constraint stores the policy's roles; a new role needs a migration as well."""
    assert STORED_ROLES == ROLES


def test_the_client_imports_with_requests_alone():
    """Other services import the client: it must load with every server-side library missing."""
    program = textwrap.dedent(
        f"""
        import importlib.abc, sys

        class Missing(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {SERVER_SIDE!r}:
                    raise ImportError(f"{{name}} is not installed here")
                return None

        sys.meta_path.insert(0, Missing())
        import service.client
        client = service.client.AuthzClient("http://127.0.0.1:1", "key")
        ours = sorted(m for m in sys.modules if m.split(".")[0] in ("service", "models", "policies"))
        print(" ".join(ours))
        """
    )
    done = subprocess.run([sys.executable, "-c", program], cwd=PROJECT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["service", "service.client"]
