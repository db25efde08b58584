"""What a cold decision reads against PostgreSQL's shared_buffers: `authz import` and `authz serve` warn when it outgrows them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from models.database import DECISION_INDEXES, Database
from tests.servers import served

AUTHZ = str(Path(sys.executable).parent / "authz")
WARNING = "the indexes a cold decision reads"


def test_sqlite_has_no_shared_buffers_to_outgrow(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'authz.sqlite3'}")
    db.migrate()
    assert db.decision_memory() is None
    assert db.memory_warning() is None


def test_a_small_store_fits_in_the_machines_shared_buffers(postgres_database):
    db = Database(postgres_database)
    read, buffers = db.decision_memory()
    assert 0 < read < buffers  # every index has its pages, however small the store
    with db.engine.connect() as connection:
        sizes = [connection.exec_driver_sql(f"SELECT pg_relation_size('{name}')").scalar() for name in DECISION_INDEXES]
        shown = connection.exec_driver_sql("SHOW shared_buffers").scalar()
    assert read == sum(sizes)
    assert buffers == {"kB": 2**10, "MB": 2**20, "GB": 2**30}[shown[-2:]] * int(shown[:-2])
    assert db.memory_warning() is None
    db.dispose()


@pytest.fixture
def tiny_buffers():
    """A PostgreSQL cluster of the test's own with the smallest shared_buffers there is (128 kB): its URL."""
    from bench.soak_pg import ThrowawayPostgres, postgres_bindir

    try:
        postgres_bindir()
    except RuntimeError as error:
        pytest.skip(f"no PostgreSQL server binaries to start a cluster with ({error}): skipped")
    cluster = ThrowawayPostgres({"shared_buffers": "128kB"}, database="authz_tiny_buffers")
    try:
        cluster.create()
        yield cluster.url
    finally:
        cluster.close()


def test_import_and_serve_warn_when_what_a_decision_reads_outgrows_shared_buffers(tiny_buffers, tmp_path):
    lines = []
    for number in range(1_500):
        account = f"acc_{number:05d}"
        lines.append({"type": "account", "id": account, "name": f"Entreprise {number}", "admin": f"u_admin_{number:05d}"})
        lines += [{"type": "membership", "account": account, "user": f"u_{(number * 7 + k) % 900:04d}", "role": "reader"}
                  for k in (1, 2)]
    path = tmp_path / "facts.ndjson"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    environment = {**os.environ, "DATABASE_URL": tiny_buffers}

    imported = subprocess.run([AUTHZ, "import", str(path)], env=environment, capture_output=True, text=True, timeout=120)
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.startswith("4500 lines read; imported 1500 accounts (4500 memberships)")  # the summary as ever
    read, buffers = Database(tiny_buffers).decision_memory()
    assert read > buffers == 128 * 1024
    assert imported.stderr.strip() == (
        f"warning: {WARNING} ({', '.join(DECISION_INDEXES)}) take {read // 1024} kB, more than PostgreSQL's "
        "shared_buffers (128 kB): cold decisions will read from the kernel's cache or the disk; give shared_buffers "
        f"at least {read // 1024} kB (README, \"A production PostgreSQL on its own host\")"
    )
    again = subprocess.run([AUTHZ, "import", str(path)], env=environment, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and WARNING not in again.stderr  # nothing changed: nothing new to say

    log = tmp_path / "server.log"
    with served(tiny_buffers, workers=1, log_path=log):
        pass
    warnings = [json.loads(line) for line in log.read_text().splitlines() if WARNING in line]
    assert len(warnings) == 1 and warnings[0]["level"] == "warning", log.read_text()[-2000:]
