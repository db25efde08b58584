"""The decision log's storage: batches of rows written, days of partitions kept and dropped, pages read.

The table (migration 0006) is partitioned by day on PostgreSQL: `insert` makes sure
each day a batch touches has its partition (created under an advisory lock, with a
short lock timeout so a busy table is retried later rather than queued behind), and
`drop_older_than` drops whole days. On SQLite it is one table, and old rows are
deleted a few thousand at a time, each batch its own short transaction.
"""

from __future__ import annotations

import json
import operator
import os
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    delete,
    func,
    select,
    text,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from models.database import Database

DECISIONS = Table(
    "decisions",
    MetaData(),
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("time", DateTime(timezone=True), nullable=False),
    Column("request_id", String(64)),
    Column("api_key", String(200)),
    Column("endpoint", String(64), nullable=False),
    Column("actor", String(200)),
    Column("action", String(64)),
    Column("resource", Text, nullable=False),
    Column("account", String(200)),
    Column("allowed", Boolean, nullable=False),
    Column("code", String(64)),
    Column("revision", BigInteger),
    Column("policy", String(64)),
)
COLUMNS = tuple(column.name for column in DECISIONS.columns if column.name != "id")
DELETE_BATCH = 5_000
PARTITION_LOCK_ID = 7_311_004_206
PARTITION_PREFIX = "decisions_"
_SQLITE_INSERT = f"INSERT INTO decisions ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)})"
_COPY = f"COPY decisions ({', '.join(COLUMNS)}) FROM STDIN"
_SQLITE_RECORDS = (
    f"INSERT INTO decisions ({', '.join(COLUMNS)}) VALUES ("
    "strftime('%Y-%m-%d %H:%M:%S', ?1 / 1000000, 'unixepoch') || printf('.%06d', ?1 % 1000000), "
    f"{', '.join(f'?{n}' for n in range(2, len(COLUMNS) + 1))})"
)
_POSTGRES_FROM_JSON = (
    f"INSERT INTO decisions ({', '.join(COLUMNS)}) "
    "SELECT timestamptz '1970-01-01 00:00:00+00' + (r ->> 0)::bigint * interval '1 microsecond', "
    "r ->> 1, r ->> 2, r ->> 3, r ->> 4, r ->> 5, r ->> 6, r ->> 7, (r ->> 8)::boolean, r ->> 9, "
    "(r ->> 10)::bigint, r ->> 11 "
    "FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS records(r, n) ORDER BY n"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MOMENT = operator.itemgetter(0)
_to_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_PARTITIONS = text(
    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
    "WHERE i.inhparent = 'decisions'::regclass"
)
_OLD_IDS = select(DECISIONS.c.id).where(DECISIONS.c.time < bindparam("cutoff")).limit(DELETE_BATCH)


class DecisionStorage:
    """The decision log's table in one database; remembers which days' partitions exist (PostgreSQL)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._days: set[date] = set()
        self._writer: Connection | None = None
        self._writer_pid = 0

    def insert(self, rows: list[tuple]) -> None:
        """Insert `rows`, each a tuple of COLUMNS (`time` an aware datetime, `resource` JSON text), in bulk.

        PostgreSQL: one COPY (the rows go to their day's partition); SQLite: one executemany
        of a prepared INSERT. The decision log's writer uses `insert_records`; this is its way
        when that is refused, and the tests'.
        """
        if not rows:
            return
        if self.db.is_sqlite:
            stored, last_moment, last_text = [], None, ""
            for row in rows:
                if row[0] is not last_moment:  # a batch's checks share one time: formatted once
                    last_moment, last_text = row[0], _sqlite_time(row[0])
                stored.append((last_text, *row[1:]))
            with self.db.write() as session:
                session.connection().connection.driver_connection.executemany(_SQLITE_INSERT, stored)
            return
        days = {row[0].astimezone(UTC).date() for row in rows}
        self.ensure_partitions(days | {day + timedelta(days=1) for day in days})  # and the next day's, ahead
        with self.db.write() as session:
            with session.connection().connection.driver_connection.cursor() as cursor:
                with cursor.copy(_COPY) as copy:
                    for row in rows:
                        copy.write_row(row)

    def insert_records(self, records: list[tuple]) -> None:
        """Insert records as the decision log buffers them, in one statement and no Python loop over them.

        A record is a row of COLUMNS with the time as integer microseconds since the epoch
        (the resource already JSON text). SQLite: one `executemany`, the time formatted by
        SQLite as SQLAlchemy stores it. PostgreSQL: the records as one JSON array (one
        encode, in C), taken apart by the server in their order — read as `jsonb`, parsed once,
        where `json` text is parsed again for each of a record's twelve fields (1,500 records:
        35 → 22 ms of the server's time, and a cold decision's p99 waits on that server).
        """
        if not records:
            return
        if self.db.is_sqlite:
            with self.db.write() as session:
                session.connection().connection.driver_connection.executemany(_SQLITE_RECORDS, records)
            return
        first_day, last_day = (
            (_EPOCH + timedelta(microseconds=moment)).date()
            for moment in (min(records, key=_MOMENT)[0], max(records, key=_MOMENT)[0])
        )
        self.ensure_partitions(first_day + timedelta(days=n) for n in range((last_day - first_day).days + 2))  # and
        # the next day's, ahead
        connection = self._writer_connection()
        try:
            connection.connection.driver_connection.execute(_POSTGRES_FROM_JSON, (_to_json(records),))
        except Exception:
            self._drop_writer(invalidate=True)  # a connection that failed is not used again: the next batch opens
            raise  # another

    def _writer_connection(self) -> Connection:
        """PostgreSQL: the connection batches are written on, kept open and in autocommit.

        A batch is one statement, so it needs no transaction around it: one round trip per
        batch, where a session from the pool costs three (the pool's ping, the insert, the
        commit) and the worker's interpreter lock for each. Its process's own: a forked
        worker opens its own.
        """
        if self._writer is None or self._writer.closed or self._writer_pid != os.getpid():
            self._writer = self.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            self._writer_pid = os.getpid()
        return self._writer

    def close(self) -> None:
        """Give back the connection batches are written on (PostgreSQL); the next batch opens another."""
        self._drop_writer(invalidate=False)

    def _drop_writer(self, *, invalidate: bool) -> None:
        writer, self._writer = self._writer, None
        if writer is None or self._writer_pid != os.getpid():  # a parent's connection is left to the parent
            return
        try:
            if invalidate:
                writer.invalidate()
            writer.close()
        except DBAPIError:
            pass

    def ensure_partitions(self, days: Iterable[date]) -> None:
        """PostgreSQL: a partition for each of `days` (UTC), created if missing."""
        missing = sorted(set(days) - self._days)
        if not missing:
            return
        with self.db.engine.begin() as connection:
            connection.execute(text("SET LOCAL lock_timeout = '2s'"))
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": PARTITION_LOCK_ID})
            existing = {name for (name,) in connection.execute(_PARTITIONS)}
            for day in missing:
                name = partition_name(day)
                if name not in existing:
                    start = datetime.combine(day, time(), UTC)
                    connection.execute(text(
                        f"CREATE TABLE {name} PARTITION OF decisions "
                        f"FOR VALUES FROM ('{start.isoformat()}') TO ('{(start + timedelta(days=1)).isoformat()}')"
                    ))
        self._days.update(missing)

    def drop_older_than(self, cutoff: datetime) -> int:
        """Forget every decision older than `cutoff`; answers how many partitions (PostgreSQL) or rows went.

        PostgreSQL drops each day whose every row is older (a day straddling the cutoff
        stays until it is wholly past): one short exclusive lock per day, given up after
        0.5 s rather than queueing inserts behind a long query, and tried again next time.
        SQLite deletes in batches of DELETE_BATCH rows, each batch its own transaction.
        """
        if self.db.is_sqlite:
            naive = cutoff.astimezone(UTC).replace(tzinfo=None)
            deleted = 0
            while True:
                with self.db.write() as session:
                    count = session.execute(
                        delete(DECISIONS).where(DECISIONS.c.id.in_(_OLD_IDS.scalar_subquery())), {"cutoff": naive}
                    ).rowcount
                deleted += count
                if count < DELETE_BATCH:
                    return deleted
        with self.db.engine.connect() as connection:
            names = [name for (name,) in connection.execute(_PARTITIONS)]
        dropped = 0
        for name in sorted(names):
            day = partition_day(name)
            if day is None or datetime.combine(day + timedelta(days=1), time(), UTC) > cutoff:
                continue
            try:
                with self.db.engine.begin() as connection:
                    connection.execute(text("SET LOCAL lock_timeout = '500ms'"))
                    connection.execute(text(f"DROP TABLE IF EXISTS {name}"))
            except DBAPIError:  # a lock not granted in time: the next pass tries again
                continue
            self._days.discard(day)
            dropped += 1
        return dropped

    def page(
        self,
        *,
        actor: str | None = None,
        account: str | None = None,
        action: str | None = None,
        allowed: bool | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after: int = 0,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """At most `limit` decisions with an id above `after` matching every filter given, oldest first.

        `since` is inclusive, `until` exclusive; `resource` comes back as the JSON text it was stored as.
        """
        columns = DECISIONS.c
        query = select(DECISIONS).where(columns.id > after)
        for column, value in ((columns.actor, actor), (columns.account, account), (columns.action, action)):
            if value is not None:
                query = query.where(column == value)
        if allowed is not None:
            query = query.where(columns.allowed.is_(allowed))
        if since is not None:
            query = query.where(columns.time >= _bound(since, self.db.is_sqlite))
        if until is not None:
            query = query.where(columns.time < _bound(until, self.db.is_sqlite))
        query = query.order_by(columns.id).limit(limit)
        with self.db.read() as session:
            rows = session.execute(query).mappings().all()
        return [{**row, "time": _aware(row["time"])} for row in rows]

    def count(self) -> int:
        """How many decisions are stored (tests and the bench)."""
        with self.db.read() as session:
            return session.execute(select(func.count()).select_from(DECISIONS)).scalar_one()


def partition_name(day: date) -> str:
    return f"{PARTITION_PREFIX}{day:%Y%m%d}"


def partition_day(name: str) -> date | None:
    suffix = name.removeprefix(PARTITION_PREFIX)
    try:
        return datetime.strptime(suffix, "%Y%m%d").date() if len(suffix) == 8 else None
    except ValueError:
        return None


def total_size(connection: Connection) -> int:
    """PostgreSQL: bytes the decision log takes, every partition with its indexes and TOAST."""
    return int(connection.execute(text(
        "SELECT coalesce(sum(pg_total_relation_size(i.inhrelid)), 0) FROM pg_inherits i "
        "WHERE i.inhparent = 'decisions'::regclass"
    )).scalar_one())


def _sqlite_time(moment: datetime) -> str:
    """As SQLAlchemy's DateTime stores it on SQLite (naive, UTC), so reads and comparisons agree."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _bound(moment: datetime, sqlite: bool) -> datetime:
    moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(tzinfo=None) if sqlite else moment


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
