"""The audit tools at scale: `authz changes verify` at 1M accounts / 3M memberships / 5M entries, and the pages.

    .venv/bin/python -m bench.audit_scale                       # 1,000,000 accounts, SQLite and PostgreSQL
    .venv/bin/python -m bench.audit_scale --accounts 100000 --databases sqlite

The store is `bench/datasets.py`'s (the tables bulk-loaded), with a change log that
records exactly those facts, written in bulk with its hash chain: per account its
creation, an invitation per other member, one billing-settings update, and a change
of role for a million members (first invited with another role) — 5 entries per
account. `authz changes verify` then runs in a process of its own; its wall time
and peak resident memory (`wait4`) are measured. `/audit/` and `/audit/changes`
are timed in process (Flask's test client), with and without a verified checkpoint.
Numbers go to bench/AUDIT_SCALE.md by hand, with the command that reproduced them.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg

from bench import datasets
from bench.datasets import DataSet, Shape
from models.changelog import GENESIS_HASH, canonical_json, entry_hash
from models.database import Database

POSTGRES_ADMIN = os.environ.get("AUTHZ_BENCH_POSTGRES", "postgresql://127.0.0.1:5432/postgres")
AT = "2026-01-01T00:00:00.000000Z"
BATCH = 20_000
COLUMNS = ("revision", "at", "kind", "account_id", "user_id", "acting_user", "api_key", "before", "after", "prev_hash", "hash")
AUDIT_KEY = "bench-audit-key"


def log_entries(data: DataSet) -> Iterator[tuple]:
    """The change log recording `data`'s facts, 5 entries per account, hash-chained, as table rows."""
    by_account: dict[str, list[tuple[str, str]]] = {}
    members = iter(data.memberships)  # sorted by account
    pending = next(members, None)
    revision = 0
    prev_hash = GENESIS_HASH
    role_changes_left = data.shape.accounts
    for account, name, restricted, auto_add in data.accounts:
        by_account.clear()
        others = []
        admin = None
        while pending is not None and pending[0] == account:
            if pending[2] == "admin" and admin is None:
                admin = pending[1]
            else:
                others.append(pending)
            pending = next(members, None)
        plan: list[tuple[str, str | None, dict, dict]] = [
            ("account.create", admin, {}, {
                "name": name, "restrict_subscription_to_payment_manager": False,
                "auto_add_subscription_invoices_to_purchases": True, "admin": admin,
            }),
        ]
        changes = []
        for _account, user, role in others:
            first = role
            if role_changes_left and role in ("collaborator", "reader"):
                first = "reader" if role == "collaborator" else "collaborator"
                role_changes_left -= 1
                changes.append(("member.change_role", user, {"role": first}, {"role": role}))
            plan.append(("member.invite", user, {"role": None}, {"role": first}))
        settings = {"restrict_subscription_to_payment_manager": restricted, "auto_add_subscription_invoices_to_purchases": auto_add}
        plan.append(("billing_settings.update", None, {
            "restrict_subscription_to_payment_manager": False, "auto_add_subscription_invoices_to_purchases": True,
        }, settings))
        plan += changes
        for kind, user, before, after in plan:
            revision += 1
            fields = {
                "revision": revision, "at": AT, "kind": kind, "account": account, "user": user,
                "acting_user": None, "api_key": "bench", "before": canonical_json(before),
                "after": canonical_json(after), "prev_hash": prev_hash,
            }
            digest = entry_hash(fields)
            yield (revision, AT, kind, account, user, None, "bench", fields["before"], fields["after"], prev_hash, digest)
            prev_hash = digest


def build(url: str, shape: Shape) -> int:
    """Bulk-load the tables and their change log at `url`; answers the number of entries."""
    data = datasets.generate(shape)
    datasets.load(url, data)
    db = Database(url)
    count = 0
    try:
        if db.is_sqlite:
            placeholders = ", ".join("?" for _ in COLUMNS)
            with db.write_engine.begin() as connection:
                raw = connection.connection.driver_connection
                batch = []
                for row in log_entries(data):
                    batch.append(row)
                    if len(batch) == BATCH:
                        raw.executemany(f"INSERT INTO changes ({', '.join(COLUMNS)}) VALUES ({placeholders})", batch)
                        count += len(batch)
                        batch.clear()
                raw.executemany(f"INSERT INTO changes ({', '.join(COLUMNS)}) VALUES ({placeholders})", batch)
                count += len(batch)
                raw.execute("UPDATE revision_counter SET revision = ?", (count,))
            with sqlite3.connect(db.sqlite_path, isolation_level=None) as connection:
                connection.execute("ANALYZE")  # statistics of the loaded store, not of the empty tables
                connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        else:
            with psycopg.connect(datasets.libpq_url(url)) as connection:
                with connection.cursor() as cursor:
                    with cursor.copy(f"COPY changes ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                        for row in log_entries(data):
                            copy.write_row(row)
                            count += 1
                    cursor.execute("UPDATE revision_counter SET revision = %s", (count,))
            with psycopg.connect(datasets.libpq_url(url), autocommit=True) as connection:
                connection.execute("VACUUM ANALYZE changes")
    finally:
        db.dispose()
    return count


def measure_verify(url: str, *args: str) -> tuple[float, float, str]:
    """`authz changes verify` in a process of its own: (seconds, peak resident MB, its first lines).

    Run under /usr/bin/time: a child forked from this process would count this process's
    pages (the data set) in its own peak until it execs.
    """
    env = {**os.environ, "DATABASE_URL": url}
    authz = str(Path(sys.executable).with_name("authz"))
    started = time.perf_counter()
    process = subprocess.run(
        ["/usr/bin/time", "-f", "peak-kb %M cpu %U %S", authz, "changes", "verify", *args],
        env=env, capture_output=True, text=True, check=False,
    )
    seconds = time.perf_counter() - started
    _label, peak_kb, _cpu, user, system = process.stderr.strip().splitlines()[-1].split()
    lines = " | ".join(process.stdout.strip().splitlines()[:3])
    cpu = float(user) + float(system)
    return seconds, int(peak_kb) / 1024, f"{cpu:.0f} s of CPU in the process; exit {process.returncode}: {lines}"


def measure_pages(url: str, rounds: int = 5) -> dict[str, float]:
    """Median milliseconds of /audit/ and /audit/changes (first and last page).

    Run after `authz changes verify` (which records its verification): each page checks the tail since.
    """
    from service.app import create_app

    app = create_app({"DATABASE_URL": url, "AUTHZ_PRESHARED_KEY": AUDIT_KEY, "MIGRATE": True})
    client = app.test_client()
    headers = {"Authorization": f"Bearer {AUDIT_KEY}"}
    runtime = app.extensions["authz"]
    figures = {}
    latest = runtime.records.head().revision
    paths = {
        "/audit/": "/audit/",
        "/audit/changes": "/audit/changes",
        "/audit/changes (newest page)": f"/audit/changes?before={latest + 1}",
        "/audit/changes (one user's changes)": "/audit/changes?user=u_admin_000500",
        "/audit/changes (one kind, one day)": "/audit/changes?kind=member.change_role&since=2026-01-01&until=2026-01-02",
        "GET /v1/changes/verify": "/v1/changes/verify",
    }
    for label, path in paths.items():
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            answer = client.get(path, headers=headers)
            times.append((time.perf_counter() - started) * 1000)
            assert answer.status_code == 200, (path, answer.status_code, answer.data[:300])
        figures[f"{label} (ms, median of {rounds})"] = statistics.median(times)
    runtime.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--directory", default="/tmp/authz-audit-scale", help="where the SQLite stores are kept")
    parser.add_argument("--keep", action="store_true", help="keep the stores (SQLite file, PostgreSQL database)")
    parser.add_argument("--skip-pages", action="store_true")
    options = parser.parse_args()
    shape = Shape(accounts=options.accounts, memberships=3 * options.accounts)
    for kind in options.databases.split(","):
        print(f"== {kind}, {shape.accounts:,} accounts, {shape.memberships:,} memberships", flush=True)
        if kind == "sqlite":
            directory = Path(options.directory)
            directory.mkdir(parents=True, exist_ok=True)
            path = directory / f"audit_{shape.accounts}.sqlite3"
            url = f"sqlite:///{path}"
            if not path.exists():
                _timed_build(url, shape)
            _run(url, options)
            if not options.keep:
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{path}{suffix}").unlink(missing_ok=True)
        else:
            name = f"authz_audit_scale_{shape.accounts}"
            base = POSTGRES_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
            url = f"{base}/{name}"
            with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as connection:
                exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
                if not exists:
                    connection.execute(f'CREATE DATABASE "{name}"')
            try:
                if not exists:
                    _timed_build(url, shape)
                _run(url, options)
            finally:
                if not options.keep:
                    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as connection:
                        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _timed_build(url: str, shape: Shape) -> None:
    started = time.perf_counter()
    count = build(url, shape)
    print(f"built: {count:,} change-log entries in {time.perf_counter() - started:.0f} s", flush=True)


def _run(url: str, options) -> None:
    seconds, peak, output = measure_verify(url)
    print(f"authz changes verify: {seconds:.1f} s, peak {peak:.0f} MB ({output})", flush=True)
    if not options.skip_pages:
        for label, value in measure_pages(url).items():
            print(f"{label}: {value:.1f}", flush=True)


if __name__ == "__main__":
    main()
