"""PostgreSQL's own share of `authz import`: the import's rows written by COPY alone, no Python in the way.

    .venv/bin/python -m bench.import_floor                          # 100,000 accounts, about 6 minutes
    FLOOR_ACCOUNTS=20000 .venv/bin/python -m bench.import_floor     # a quick look

The shape of `bench/large.py` is imported once with `authz import`; the rows it wrote to
`accounts`, `memberships` and `changes` are read back (COPY TO) and then written again by
COPY FROM into fresh databases of the current schema, in one transaction:
- with every index, constraint and trigger the schema has (the floor of a single writer);
- without one of them at a time (what each costs the import);
- split by account in two halves written at once on two connections (what a second
  writer could win on this machine, where PostgreSQL and the importer share the cores).
Written to bench/IMPORT_FLOOR.md (or bench/out/IMPORT_FLOOR-<N>k.md for another size).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import psycopg

from bench import datasets, machine
from bench.large import AUTHZ, BENCH_DIR, POSTGRES_ADMIN, write_shape
from models.database import Database

TABLES = ("accounts", "memberships", "changes")
ACCOUNT_COLUMN = {"accounts": "id", "memberships": "account_id", "changes": "account_id"}
ROUNDS = 2
WITHOUT = {  # what is taken away, and the statement that takes it away
    "the memberships' foreign key to accounts": "ALTER TABLE memberships DROP CONSTRAINT memberships_account_id_fkey",
    "memberships_by_user": "DROP INDEX memberships_by_user",
    "one_payment_manager_per_account": "DROP INDEX one_payment_manager_per_account",
    "changes_by_account": "DROP INDEX changes_by_account",
    "changes_by_user": "DROP INDEX changes_by_user",
    "changes_by_kind": "DROP INDEX changes_by_kind",
    "changes_by_acting_user": "DROP INDEX changes_by_acting_user",
    "changes_by_time": "DROP INDEX changes_by_time",
    "the notification trigger": "DROP TRIGGER authz_notify_changes ON changes",
}


def imported_rows(accounts: int, work: Path) -> dict[str, list[bytes]]:
    """Each table's rows as `authz import` wrote them (COPY text lines), the account each belongs to first."""
    path = work / "shape.ndjson"
    write_shape(path, accounts)
    with datasets.postgres_database(POSTGRES_ADMIN, "floor") as url:
        Database(url).migrate()
        subprocess.run([AUTHZ, "import", str(path)], env={**os.environ, "DATABASE_URL": url}, check=True,
                       stdout=subprocess.DEVNULL)
        rows = {}
        with psycopg.connect(datasets.libpq_url(url)) as connection, connection.cursor() as cursor:
            for table in TABLES:
                columns = [column.name for column in cursor.execute(f"SELECT * FROM {table} LIMIT 0").description]
                data = bytearray()
                with cursor.copy(f"COPY {table} TO STDOUT") as copy:
                    for block in copy:
                        data += block
                rows[table] = (columns.index(ACCOUNT_COLUMN[table]), bytes(data).splitlines(keepends=True))
    return rows


def timed_copy(rows: dict, prepare: str | None = None, halves: int = 1) -> float:
    """Seconds to COPY every row into a fresh database (one transaction per connection, `halves` connections)."""
    with datasets.postgres_database(POSTGRES_ADMIN, "floorcopy") as url:
        Database(url).migrate()
        with psycopg.connect(datasets.libpq_url(url), autocommit=True) as connection:
            if prepare:
                connection.execute(prepare)
            connection.execute("CHECKPOINT")
        parts = [{table: b"".join(line for line in lines if hash(line.split(b"\t")[column]) % halves == half)
                  for table, (column, lines) in rows.items()} for half in range(halves)]

        def write(part: dict[str, bytes]) -> None:
            with psycopg.connect(datasets.libpq_url(url)) as connection, connection.cursor() as cursor:
                for table in TABLES:
                    with cursor.copy(f"COPY {table} FROM STDIN") as copy:
                        copy.write(part[table])

        writers = [threading.Thread(target=write, args=(part,)) for part in parts]
        started = time.perf_counter()
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join()
        return time.perf_counter() - started


def rounds(measure: Callable[[], float]) -> list[float]:
    return [measure() for _round in range(ROUNDS)]


def main() -> int:
    accounts = int(os.environ.get("FLOOR_ACCOUNTS", "100000"))
    problem = datasets.postgres_problem(POSTGRES_ADMIN)
    if problem:
        print(f"PostgreSQL is not reachable ({problem})", file=sys.stderr)
        return 2
    (BENCH_DIR / "out").mkdir(exist_ok=True)
    output = BENCH_DIR / "IMPORT_FLOOR.md" if accounts == 100_000 else BENCH_DIR / "out" / f"IMPORT_FLOOR-{accounts // 1000}k.md"
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=BENCH_DIR / "out")))
        rows = imported_rows(accounts, work)
        counts = {table: len(lines) for table, (_column, lines) in rows.items()}
        everything = rounds(lambda: timed_copy(rows))
        without = {name: rounds(lambda statement=statement: timed_copy(rows, statement)) for name, statement in WITHOUT.items()}
        two = rounds(lambda: timed_copy(rows, halves=2))
    floor = statistics.median(everything)
    lines = [
        "# PostgreSQL's share of `authz import`",
        "",
        f"`.venv/bin/python -m bench.import_floor` ({accounts:,} accounts of `bench/large.py`'s shape: "
        + ", ".join(f"{count:,} {table}" for table, count in counts.items()) + " rows).",
        f"Machine: {', '.join(f'{name} {value}' for name, value in machine.describe(POSTGRES_ADMIN).items())}.",
        "",
        "The rows `authz import` wrote, written again by COPY alone into a fresh database of the current schema "
        f"(one transaction; seconds, {ROUNDS} rounds, median first).",
        "",
        "| written | seconds | ÷ with everything |",
        "|---|---|---|",
        f"| with every index, constraint and trigger (one writer) | {floor:.1f} ({', '.join(f'{s:.1f}' for s in everything)}) | 1.00 |",
    ]
    for name, seconds in without.items():
        median = statistics.median(seconds)
        lines.append(f"| without {name} | {median:.1f} ({', '.join(f'{s:.1f}' for s in seconds)}) | {median / floor:.2f} |")
    median = statistics.median(two)
    lines.append(f"| everything, two connections writing half the accounts each | {median:.1f} "
                 f"({', '.join(f'{s:.1f}' for s in two)}) | {median / floor:.2f} |")
    lines += ["", "Written by bench/import_floor.py; the import's own rate is in bench/LARGE.md.", ""]
    output.write_text("\n".join(lines))
    print(f"written: {output.relative_to(BENCH_DIR.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
