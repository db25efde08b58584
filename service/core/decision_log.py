"""The decision log: every decision answered and every write refused, recorded off the request path.

A request only appends its records, already as rows (the resource's JSON text, its
account), to a bounded in-memory buffer (no lock, no I/O); a writer thread of the same
process takes what is buffered every FLUSH_INTERVAL seconds (0.1 on PostgreSQL, 0.5 on
SQLite) and inserts it in batches, so a decision is readable within about a second and
never waits on the database. When the buffer is full, or a batch cannot be written, the
records are dropped and counted (`authz_decision_log_dropped_total` in `/metrics`),
never queued without bound. The writer also applies the retention (whole days on
PostgreSQL, small batches on SQLite), at start and every RETENTION_INTERVAL seconds.

Settings: `AUTHZ_DECISION_LOG` = all (default) | denied (only what was refused) | off;
`AUTHZ_DECISION_LOG_RETENTION_DAYS` (default 90).
"""

from __future__ import annotations

import atexit
import csv
import io
import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import Counter

from models.database import Database
from models.decision_log import DecisionStorage

LEVELS = ("all", "denied", "off")
DEFAULT_RETENTION_DAYS = 90
CAPACITY = 50_000  # records buffered per process: about 2 s of a saturated worker, a few MB
# Seconds between the writer's flushes. PostgreSQL: a batch's insert is a burst of the server's CPU on cores it
# shares with the workers, and smaller, more frequent ones cut a cold decision's p99 (at 100,000 accounts, three
# runs each: 2.23, 2.06, 1.93 times the floor's every 0.5 s; 1.70, 1.65, 1.95 every 0.1 s). SQLite: each flush
# takes the file's write lock and commits; every 0.5 s served more (1.39 against 1.17 times the floor, one run).
FLUSH_INTERVAL = {"postgresql": 0.1, "sqlite": 0.5}
RETENTION_INTERVAL = 600.0
MAX_BATCH = 5_000
MAX_LIMIT = 1_000
log = logging.getLogger("authz.decision_log")

WRITTEN = Counter("authz_decision_log_written_total", "Decisions and refused writes recorded in the decision log")
DROPPED = Counter(
    "authz_decision_log_dropped_total",
    "Decisions and refused writes that could not be recorded, by reason (buffer_full, write_failed)",
    ["reason"],
)
_BUFFER_FULL, _WRITE_FAILED = DROPPED.labels("buffer_full"), DROPPED.labels("write_failed")


@dataclass(frozen=True)
class Asker:
    """Who asked, as the edge knows it: the request's id, the API key's name, the endpoint answered."""

    request_id: str | None
    api_key: str | None
    endpoint: str


def settings_from(config: dict[str, Any]) -> tuple[str, int]:
    """The level and the retention in days, from `config` or the environment; ValueError for a bad value."""
    level = str(config.get("AUTHZ_DECISION_LOG") or os.environ.get("AUTHZ_DECISION_LOG") or "all").strip().lower()
    if level not in LEVELS:
        raise ValueError(f"AUTHZ_DECISION_LOG must be one of {', '.join(LEVELS)}, not {level!r}")
    days = str(
        config.get("AUTHZ_DECISION_LOG_RETENTION_DAYS")
        or os.environ.get("AUTHZ_DECISION_LOG_RETENTION_DAYS")
        or DEFAULT_RETENTION_DAYS
    ).strip()
    if not days.isascii() or not days.isdigit() or int(days) < 1:
        raise ValueError(f"AUTHZ_DECISION_LOG_RETENTION_DAYS must be a whole number of days, at least 1, not {days!r}")
    return level, int(days)


class DecisionLog:
    """One process's buffer and writer thread over the decision log's storage."""

    def __init__(
        self,
        db: Database,
        *,
        level: str = "all",
        retention_days: int = DEFAULT_RETENTION_DAYS,
        capacity: int = CAPACITY,
        flush_interval: float | None = None,
    ) -> None:
        if level not in LEVELS:
            raise ValueError(f"the decision log's level must be one of {', '.join(LEVELS)}")
        self.storage = DecisionStorage(db)
        self.level = level
        self.retention_days = retention_days
        self.capacity = capacity
        if flush_interval is None:
            flush_interval = FLUSH_INTERVAL["sqlite" if db.is_sqlite else "postgresql"]
        self.flush_interval = flush_interval
        self._buffer: deque[tuple] = deque()
        self._writing = threading.Lock()  # the writer thread, `flush` and `close` write one at a time
        self._starting = threading.Lock()  # never `_writing`: a request must not wait on a batch being written
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._thread_pid = 0
        self._next_retention = 0.0
        self._last_failure_logged = 0.0
        self._closed = False
        atexit.register(self.close)

    # -- recording (the request path: append only) ---------------------------

    def decision(
        self, asker: Asker, actor: str, action: str | None, resource: dict, allowed: bool, *, revision: int, policy: str
    ) -> None:
        """One decision answered."""
        if self.level == "all" or self.level == "denied" and not allowed:
            self._append([(
                time.time_ns() // 1000, asker.request_id, asker.api_key, asker.endpoint, actor, action,
                _to_json(resource), _account(resource), allowed, None, revision, policy,
            )])

    def decisions(self, asker: Asker, checks: list[dict], outcomes: Iterable[bool], *, revision: int, policy: str) -> None:
        """The checks of one batch, each its own record, in order."""
        if self.level == "off":
            return
        now, request_id, api_key, endpoint = time.time_ns() // 1000, asker.request_id, asker.api_key, asker.endpoint
        denied_only = self.level == "denied"
        self._append([
            (now, request_id, api_key, endpoint, check["actor"]["id"], check["action"], _to_json(check["resource"]),
             _account(check["resource"]), allowed, None, revision, policy)
            for check, allowed in zip(checks, outcomes, strict=True)
            if not (denied_only and allowed)
        ])

    def actions(
        self, asker: Asker, actor: str, resource: dict, granted: Iterable[str], known: Iterable[str], *, revision: int,
        policy: str,
    ) -> None:
        """An answer of `/v1/actions`: one record per action of the resource's type, granted or not."""
        if self.level == "off":
            return
        now, text, owner = time.time_ns() // 1000, _to_json(resource), _account(resource)
        granted = set(granted)
        self._append([
            (now, asker.request_id, asker.api_key, asker.endpoint, actor, action, text, owner, action in granted, None,
             revision, policy)
            for action in sorted({*known, *granted})
            if self.level == "all" or action not in granted
        ])

    def refused_write(
        self, asker: Asker, actor: str | None, action: str, resource: dict, code: str, *, revision: int | None,
        policy: str,
    ) -> None:
        """A write refused (403 or 409): recorded as not allowed, with the refusal's code."""
        if self.level != "off":
            self._append([(
                time.time_ns() // 1000, asker.request_id, asker.api_key, asker.endpoint, actor, action,
                _to_json(resource), _account(resource), False, code, revision, policy,
            )])

    def _append(self, records: list[tuple]) -> None:
        if not records:
            return
        if len(self._buffer) + len(records) > self.capacity:
            _BUFFER_FULL.inc(len(records))
            return
        self._buffer.extend(records)
        if self._thread_pid != os.getpid():  # first record of this process (a forked worker starts its own)
            self._start_writer()

    def _start_writer(self) -> None:
        with self._starting:
            if self._thread_pid == os.getpid() or self._closed:
                return
            if self._thread_pid:  # a forked child: the parent's writer and its lock stay the parent's
                self._writing = threading.Lock()
            self._thread_pid = os.getpid()
            self._stopping = threading.Event()
            self._thread = threading.Thread(target=self._run, name="authz-decision-log", daemon=True)
            self._thread.start()

    # -- writing (the writer thread) -------------------------------------------

    def _run(self) -> None:
        while not self._stopping.wait(self.flush_interval):
            self.flush()
            if time.monotonic() >= self._next_retention:
                self._next_retention = time.monotonic() + RETENTION_INTERVAL
                self.apply_retention()
        self.flush()

    def flush(self) -> int:
        """Write everything buffered so far, now; answers how many records were written.

        What is recorded while it writes waits for the next flush: draining until the buffer
        is empty never ends under steady traffic, and wrote a handful of records per
        transaction, back to back (300 transactions a second per worker, each costing both
        the worker and the database more than the records in it).
        """
        written = 0
        with self._writing:
            pending = len(self._buffer)
            while pending > 0:
                batch = [self._buffer.popleft() for _ in range(min(MAX_BATCH, pending))]
                pending -= len(batch)
                try:
                    self._write(batch)
                except Exception as error:  # noqa: BLE001 - a failed batch is counted, never raised into a request
                    _WRITE_FAILED.inc(len(batch))
                    self._log_failure("could not write %d decisions: %s", len(batch), error)
                    continue
                WRITTEN.inc(len(batch))
                written += len(batch)
        return written

    def _write(self, batch: list[tuple]) -> None:
        """One batch, with no Python loop over its records: they are built as rows on the request path.

        The writer thread shares the worker's interpreter lock with the requests. A request
        stores its records as rows already (the resource's JSON text and its account, about
        1.5 µs a record), so the writer hands the list to the storage as it stands: one
        `executemany` on SQLite, one JSON array taken apart by PostgreSQL (a single statement on
        a connection the writer keeps in autocommit: one round trip per batch). Where that is
        refused, the batch is written row by row; that failure is the one counted.
        """
        try:
            self.storage.insert_records(batch)
        except Exception:  # noqa: BLE001 - tried again row by row; that failure is the one counted
            self.storage.insert(_rows(batch))

    def apply_retention(self, now: datetime | None = None) -> int:
        """Forget what is older than the retention; answers the partitions (PostgreSQL) or rows (SQLite) gone."""
        cutoff = (now or datetime.now(UTC)) - timedelta(days=self.retention_days)
        try:
            return self.storage.drop_older_than(cutoff)
        except Exception as error:  # noqa: BLE001 - retention is tried again later; it never stops the writer
            self._log_failure("could not apply the decision log's retention: %s", error)
            return 0

    def close(self) -> None:
        """Stop the writer after a last flush (graceful shutdown); later records are written by `flush` alone."""
        thread = self._thread
        if thread is not None and self._thread_pid == os.getpid() and thread.is_alive():
            self._stopping.set()
            thread.join(timeout=10)
        self._closed = True
        if self._buffer:
            self.flush()
        self.storage.close()
        atexit.unregister(self.close)  # closed: the interpreter's exit need not keep it alive

    def _log_failure(self, message: str, *args: Any) -> None:
        if time.monotonic() - self._last_failure_logged > 60:
            self._last_failure_logged = time.monotonic()
            log.warning(message, *args)

    # -- reading ---------------------------------------------------------------

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
    ) -> dict[str, Any]:
        """`{"decisions": [...oldest first], "next_after"}`: at most `limit` records after id `after`."""
        rows = self.storage.page(
            actor=actor, account=account, action=action, allowed=allowed, since=since, until=until, after=after,
            limit=limit,
        )
        decisions = [_document(row) for row in rows]
        return {"decisions": decisions, "next_after": decisions[-1]["id"] if len(decisions) == limit else None}


CSV_COLUMNS = (
    "id", "time", "request_id", "api_key", "endpoint", "actor", "action", "resource", "account", "allowed", "code",
    "revision", "policy",
)


def as_csv(decisions: list[dict[str, Any]]) -> str:
    """Decisions as CSV with a header row; `resource` as its JSON text, `allowed` as true/false.

    A cell that a spreadsheet would take for a formula (=, +, -, @) is prefixed with a quote.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for decision in decisions:
        writer.writerow([csv_cell(decision[column]) for column in CSV_COLUMNS])
    return out.getvalue()


def csv_cell(value: Any) -> str:
    """A value as a CSV cell a spreadsheet shows as text: ids may start with = + - @, formulas may not run."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        value = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


_to_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode  # built once: json.dumps with
# arguments builds an encoder per call, a third of the writer's time per row


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _rows(records: list[tuple]) -> list[tuple]:
    """Buffered records as rows of the table, in `models.decision_log.COLUMNS` order (the slow path)."""
    rows = []
    last_moment, last_time = None, None
    for moment, *rest in records:
        if moment != last_moment:  # a batch's checks share theirs
            last_moment, last_time = moment, _EPOCH + timedelta(microseconds=moment)
        rows.append((last_time, *rest))
    return rows


def _account(resource: dict) -> str | None:
    """The account a resource belongs to (an Account's own id), or None when it names none (`/v1/list`)."""
    if resource.get("type") == "Account":
        return resource.get("id")
    return resource.get("account")


def _document(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "time": row["time"].isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "request_id": row["request_id"],
        "api_key": row["api_key"],
        "endpoint": row["endpoint"],
        "actor": row["actor"],
        "action": row["action"],
        "resource": json.loads(row["resource"]),
        "account": row["account"],
        "allowed": row["allowed"],
        "code": row["code"],
        "revision": row["revision"],
        "policy": row["policy"],
    }
