"""The stores the benchmarks run on, bulk-loaded straight into the tables (not one HTTP call per row).

A store of N accounts holds 3N memberships:
- every account has exactly one admin (`u_admin_<n>`, one per account);
- the partner, `u_partner`, is payment manager of exactly 1,000 accounts, spread
  evenly over the id range (every 100th account of 100,000; every account of
  1,000, so that listing the partner's accounts answers the same 1,000 ids at
  both sizes and only the size of the store differs). Those accounts are set up
  as the story says: restricted to the payment manager, invoices not added to
  purchases;
- a fifth of the other accounts have another firm (`u_firm_<k>`, 200 firms) as
  payment manager, half of those restricted;
- the rest are collaborators and readers drawn from a pool of N/2 users, so
  one person is a member of several accounts.
The change log is left empty and the revision counter at 0, which is consistent.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from sqlalchemy import insert

from models.database import Database
from models.tables import AccountRow, MembershipRow

PARTNER = "u_partner"
FIRMS = 200
SEED = 5


@dataclass(frozen=True)
class Shape:
    accounts: int
    memberships: int
    partner_accounts: int = 1_000

    @property
    def label(self) -> str:
        return f"{self.accounts // 1000}k"


SMALL = Shape(accounts=1_000, memberships=3_000)
LARGE = Shape(accounts=100_000, memberships=300_000)


def account_id(number: int) -> str:
    return f"acc_{number:06d}"


def admin_of(number: int) -> str:
    return f"u_admin_{number:06d}"


@dataclass
class DataSet:
    shape: Shape
    accounts: list[tuple[str, str, bool, bool]]  # id, name, restricted, auto_add
    memberships: list[tuple[str, str, str]]  # account, user, role
    partner_numbers: list[int]  # the accounts u_partner is payment manager of


def generate(shape: Shape, seed: int = SEED) -> DataSet:
    """The rows of a store of this shape; the same seed gives the same rows."""
    rng = random.Random(seed)
    stride = shape.accounts // shape.partner_accounts
    partner_numbers = list(range(0, shape.accounts, stride))[: shape.partner_accounts]
    partner = set(partner_numbers)
    accounts: list[tuple[str, str, bool, bool]] = []
    memberships: list[tuple[str, str, str]] = []
    taken: set[tuple[int, str]] = set()
    for number in range(shape.accounts):
        account = account_id(number)
        restricted, auto_add = False, True
        memberships.append((account, admin_of(number), "admin"))
        if number in partner:
            memberships.append((account, PARTNER, "payment_manager"))
            restricted, auto_add = True, False
        elif rng.random() < 0.2:
            memberships.append((account, f"u_firm_{rng.randrange(FIRMS):03d}", "payment_manager"))
            restricted, auto_add = rng.random() < 0.5, rng.random() < 0.5
        accounts.append((account, f"Entreprise {number}", restricted, auto_add))
    pool = max(shape.accounts // 2, 10)
    while len(memberships) < shape.memberships:
        number = rng.randrange(shape.accounts)
        user = f"u_{rng.randrange(pool):06d}"
        if (number, user) in taken:
            continue
        taken.add((number, user))
        memberships.append((account_id(number), user, "collaborator" if rng.random() < 0.4 else "reader"))
    memberships.sort()
    return DataSet(shape, accounts, memberships, partner_numbers)


def load(url: str, data: DataSet) -> None:
    """Create the schema at `url` and bulk-load the data set (COPY on PostgreSQL, executemany on SQLite)."""
    db = Database(url)
    try:
        db.migrate()
        if db.is_sqlite:
            _load_sqlite(db, data)
        else:
            _load_postgres(db, data)
    finally:
        db.dispose()


def _load_sqlite(db: Database, data: DataSet) -> None:
    with db.write_engine.begin() as connection:
        connection.execute(
            insert(AccountRow.__table__),
            [
                {
                    "id": id_,
                    "name": name,
                    "restrict_subscription_to_payment_manager": restricted,
                    "auto_add_subscription_invoices_to_purchases": auto_add,
                }
                for id_, name, restricted, auto_add in data.accounts
            ],
        )
        connection.execute(
            insert(MembershipRow.__table__),
            [{"account_id": account, "user_id": user, "role": role} for account, user, role in data.memberships],
        )
    db.analyze()  # migrate() gathered statistics on the empty tables: plan on the loaded ones
    with db.engine.connect() as connection:
        # Fold the write-ahead log into the file: the servers start from a settled file.
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def _load_postgres(db: Database, data: DataSet) -> None:
    with psycopg.connect(libpq_url(db.url)) as connection:
        with connection.cursor() as cursor:
            columns = "id, name, restrict_subscription_to_payment_manager, auto_add_subscription_invoices_to_purchases"
            with cursor.copy(f"COPY accounts ({columns}) FROM STDIN") as copy:
                for row in data.accounts:
                    copy.write_row(row)
            with cursor.copy("COPY memberships (account_id, user_id, role) FROM STDIN") as copy:
                for row in data.memberships:
                    copy.write_row(row)
    with psycopg.connect(libpq_url(db.url), autocommit=True) as connection:
        # What autovacuum does shortly after a bulk load; done now so every run plans alike.
        connection.execute("VACUUM ANALYZE")


def sqlite_url(directory: Path, shape: Shape) -> str:
    return f"sqlite:///{directory / f'bench_{shape.label}.sqlite3'}"


def libpq_url(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL as psycopg takes it."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def postgres_problem(admin_url: str) -> str | None:
    """Why PostgreSQL cannot be used for the benchmark, or None when it can."""
    try:
        with psycopg.connect(admin_url, connect_timeout=3):
            return None
    except psycopg.Error as error:
        return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


@contextmanager
def postgres_database(admin_url: str, label: str) -> Iterator[str]:
    """A database `authz_bench_*` created for this run; dropped afterwards, whatever happens."""
    name = f"authz_bench_{uuid.uuid4().hex[:8]}_{label}"
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
