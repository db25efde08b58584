"""Watchers: how a process's fact cache learns that another process has committed.

SQLite: `PRAGMA data_version` on a connection of the cache's own. PostgreSQL: a
background thread that LISTENs for the change log's notifications, with a heartbeat.
"""

from __future__ import annotations

import sqlite3
import threading
import time

import psycopg

from models.changelog import NOTIFY_CHANNEL
from models.database import POSTGRES_CONNECT_ARGS, Database


class SqliteWatcher:
    """Sees commits by other connections to the SQLite file through `PRAGMA data_version`."""

    def __init__(self, db: Database) -> None:
        self.path = db.sqlite_path
        self._connection: sqlite3.Connection | None = None
        self._version: int | None = None

    def start(self) -> None:
        self._connection = None
        self._version = None

    def stop(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def changed(self, revision: int) -> bool:
        if self._connection is None:
            self._connection = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        version = self._connection.execute("PRAGMA data_version").fetchone()[0]
        changed = version != self._version
        self._version = version
        return changed


class PostgresWatcher:
    """Listens for the change log's notifications in a background thread.

    Each write notifies its revision at commit. The thread also reads the
    latest revision four times a second, so a lost notification delays
    freshness by at most that; `at_least_revision` never waits for it. While
    the thread has no connection, or has not heard from the database for
    three heartbeats, every decision reads the change log itself, and fails
    (503) if the database cannot be read: losing the database turns
    decisions into errors within about a second, never into guesses.
    """

    HEARTBEAT_SECONDS = 0.25

    def __init__(self, db: Database) -> None:
        self.conninfo = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.latest = 0
        self.healthy = False
        self.last_heard = 0.0  # monotonic time of the last successful heartbeat
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.healthy = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="authz-change-listener", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def changed(self, revision: int) -> bool:
        silent = time.monotonic() - self.last_heard > 3 * self.HEARTBEAT_SECONDS
        return not self.healthy or silent or self.latest > revision

    def _run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True, **POSTGRES_CONNECT_ARGS) as connection:
                    connection.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    self._heartbeat(connection)
                    self.healthy = True
                    backoff = 0.1
                    while not self._stop.is_set():
                        for notification in connection.notifies(timeout=self.HEARTBEAT_SECONDS):
                            self.latest = max(self.latest, int(notification.payload))
                        self._heartbeat(connection)
            except (psycopg.Error, OSError, ValueError):
                self.healthy = False
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 2.0)
        self.healthy = False

    def _heartbeat(self, connection: psycopg.Connection) -> None:
        row = connection.execute("SELECT revision FROM revision_counter WHERE id = 1").fetchone()
        if row is not None:
            self.latest = max(self.latest, row[0])
        self.last_heard = time.monotonic()
