"""The database: the embedded SQLite file by default, PostgreSQL through `DATABASE_URL`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session

PROJECT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_SQLITE_PATH = PROJECT_DIR / "var" / "authz.sqlite3"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# A dead database or network must surface as an error within seconds, not hang a worker.
POSTGRES_CONNECT_ARGS = {
    "connect_timeout": 3,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 1,
    "keepalives_count": 3,
    "tcp_user_timeout": 5000,
    # A worker (or its host) that dies inside a transaction must not hold the account and
    # revision-counter locks until the server's own keepalive notices: our transactions never idle.
    "options": "-c idle_in_transaction_session_timeout=10000",
}
MIGRATION_LOCK_ID = 7_311_004_201  # any constant: serialises concurrent migrations on PostgreSQL
# What a cold decision reads on PostgreSQL, index-only (models/facts.py's statement): the account's settings, the
# user's role, the support flag. Each lookup is a random page of these indexes.
DECISION_INDEXES = ("account_settings", "memberships_by_user", "support_agents_pkey")


def database_url() -> str:
    """`DATABASE_URL`, or the embedded SQLite file under `var/`."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    DEFAULT_SQLITE_PATH.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{DEFAULT_SQLITE_PATH}"


class Database:
    """Engines and transactions.

    `write()` opens the one transaction a change is made in. On SQLite it
    starts with BEGIN IMMEDIATE, so writers queue for the file's write lock
    instead of failing halfway; on PostgreSQL the write path takes row locks
    (see `models/writes.py`). `read()` gives a connection for fact lookups.
    """

    def __init__(self, url: str | None = None) -> None:
        self.url = url or database_url()
        self.is_sqlite = self.url.startswith("sqlite")
        if self.is_sqlite:
            self.sqlite_path = self.url.split("///", 1)[1] if "///" in self.url else ""
            if not self.sqlite_path or self.sqlite_path == ":memory:":
                raise ValueError("the SQLite database must be a file (several connections share it)")
            self.engine = _sqlite_engine(self.url, begin="BEGIN")
            self.write_engine = _sqlite_engine(self.url, begin="BEGIN IMMEDIATE")
        else:
            self.sqlite_path = ""
            self.engine = create_engine(
                self.url,
                pool_pre_ping=True,
                pool_use_lifo=True,  # the most recently used connection first: its caches are warm
                pool_size=5,
                max_overflow=10,
                connect_args=POSTGRES_CONNECT_ARGS,
                hide_parameters=True,  # error messages (and so logs) never carry ids or values
            )
            self.write_engine = self.engine

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session in one write transaction: committed on success, rolled back on any error."""
        with Session(self.write_engine, expire_on_commit=False) as session:
            with session.begin():
                yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session in a read transaction, for answers that read several facts at once."""
        with Session(self.engine, expire_on_commit=False) as session:
            with session.begin():
                yield session

    def migrate(self) -> None:
        """Create the schema or bring it to the latest migration."""
        with self.write_engine.begin() as connection:
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS_DIR))
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            if self.is_sqlite and not connection.exec_driver_sql(
                "SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'"
            ).first():
                # SQLite plans with statistics only once ANALYZE has gathered them (PostgreSQL's
                # autovacuum does this by itself): once, so a bulk-loaded store is planned well.
                connection.exec_driver_sql("ANALYZE")

    def analyze(self) -> None:
        """Refresh the planner's statistics after a bulk load (SQLite keeps the ones gathered on empty tables).

        PostgreSQL: the fact tables are vacuumed too, so that their visibility map lets a decision's
        lookups be index-only (without it every cold lookup also reads the table's page).
        """
        if self.is_sqlite:
            with self.write_engine.begin() as connection:
                connection.exec_driver_sql("ANALYZE")
        else:
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.exec_driver_sql("VACUUM (ANALYZE) accounts, memberships, support_agents")
                connection.exec_driver_sql("ANALYZE changes")

    def decision_memory(self) -> tuple[int, int] | None:
        """PostgreSQL: (bytes of the indexes a cold decision reads, bytes of `shared_buffers`); None on SQLite."""
        if self.is_sqlite:
            return None
        with self.engine.connect() as connection:
            read, buffers = connection.execute(
                text(
                    "SELECT coalesce(sum(pg_relation_size(to_regclass(name))), 0), "
                    "pg_size_bytes(current_setting('shared_buffers')) FROM unnest(CAST(:names AS text[])) AS name"
                ),
                {"names": list(DECISION_INDEXES)},
            ).one()
        return int(read), int(buffers)

    def memory_warning(self) -> str | None:
        """A warning when what a cold decision reads has outgrown PostgreSQL's `shared_buffers`, else None.

        Beyond them a cold decision reads from the kernel's file cache, which a host may give back
        when it sits idle (this one does after a minute), and then from the disk: milliseconds to
        hundreds of milliseconds where a page in the buffers takes microseconds (bench/COLD_READS.md).
        """
        sizes = self.decision_memory()
        if sizes is None or sizes[0] <= sizes[1]:
            return None
        read, buffers = (f"{size // 2**10} kB" if size < 2**20 else f"{round(size / 2**20)} MB" for size in sizes)
        return (
            f"the indexes a cold decision reads ({', '.join(DECISION_INDEXES)}) take {read}, more than "
            f"PostgreSQL's shared_buffers ({buffers}): cold decisions will read from the kernel's cache or the "
            f"disk; give shared_buffers at least {read} (README, \"A production PostgreSQL on its own host\")"
        )

    def dispose(self, close: bool = True) -> None:
        """Drop every pooled connection: closed at shutdown, left to the parent after a fork (`close=False`)."""
        self.engine.dispose(close=close)
        if self.write_engine is not self.engine:
            self.write_engine.dispose(close=close)


def _sqlite_engine(url: str, begin: str) -> Engine:
    engine = create_engine(url, connect_args={"timeout": 30}, hide_parameters=True, pool_use_lifo=True)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection, _record) -> None:
        # Let SQLAlchemy's "begin" event, below, emit BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA cache_size=-16384")  # 16 MiB of pages kept per connection (default: 2 MiB)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection) -> None:
        connection.exec_driver_sql(begin)

    return engine
