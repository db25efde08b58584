"""A process's cache of the facts decisions read, kept fresh by the change log.

The cache holds the few facts decisions read (an account's settings, a user's
role on an account, whether a user is a support agent, an API key). It knows
the revision it reflects. Before each decision it asks its watcher whether
another connection has written since; if so, it reads the new change-log
entries and evicts every fact they touched. A decision that must reflect at
least revision N (`sync(N)`) makes it read the log until it reflects N, so the
answer is never older than N. Its watchers are in `watchers.py`.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import psycopg
from sqlalchemy import Connection, bindparam, select
from sqlalchemy.exc import SQLAlchemyError

from models.changelog import current_revision
from models.database import Database
from models.errors import RevisionAhead, Unavailable
from models.facts import DbFacts
from models.tables import ChangeRow
from models.watchers import PostgresWatcher, SqliteWatcher

_CHANGES_SINCE = (
    select(ChangeRow.revision, ChangeRow.kind, ChangeRow.account_id, ChangeRow.user_id)
    .where(ChangeRow.revision > bindparam("revision"))
    .order_by(ChangeRow.revision)
    .limit(bindparam("limit"))
)
MAX_CACHED_FACTS = 2_000_000
CACHE_DROP_KIND = "cache.drop"  # a change-log entry telling every process to forget its cached facts
MAX_REPLAYED_CHANGES = 10_000
# Key ids presented but not stored, remembered so a caller retrying a wrong key does not cost a read each time;
# the least recently presented are forgotten first, so random keys cannot make the process grow.
MAX_UNKNOWN_KEY_IDS = 1024
T = TypeVar("T")


class FactCache:
    """A process's cache of facts, and the revision it reflects. Safe to share between threads."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.lock = threading.RLock()
        self.watcher = SqliteWatcher(db) if db.is_sqlite else PostgresWatcher(db)
        self.revision = -1  # unknown until the first sync
        self._written = 0  # the latest revision this process wrote itself
        # Told when the log records a new policy (or after a reset), so the process decides with it from then on.
        self.on_policy_change: Callable[[], None] = lambda: None
        self._settings: dict[str, tuple[bool, bool] | None] = {}
        self._roles: dict[tuple[str, str], str | None] = {}
        self._support: dict[str, bool] = {}
        self._keys: dict[str, tuple[str, str, str | None, str]] = {}  # stored keys: as many as were ever created
        self._unknown_keys: OrderedDict[str, None] = OrderedDict()  # least recently presented first
        self._connection: Connection | None = None
        self._pid = 0

    # -- freshness --------------------------------------------------------

    def sync(self, at_least_revision: int | None = None) -> int:
        """Bring the cache up to date with what the watcher saw, and at least to `at_least_revision`.

        Raises `Unavailable` when the database cannot be read: the caller must
        then refuse to decide rather than answer from facts of unknown age.
        """
        with self.lock:
            self._after_fork()
            target = max(at_least_revision or 0, self._written)
            behind = target > self.revision
            try:
                if self.revision < 0:
                    self._reset()
                elif behind or self.watcher.changed(self.revision):
                    self._catch_up()
            except (SQLAlchemyError, sqlite3.Error, psycopg.Error) as error:
                self._drop_connection()
                raise Unavailable(f"the database cannot be read: {_short(error)}") from error
            if at_least_revision is not None and at_least_revision > self.revision:
                raise RevisionAhead(
                    f"at_least_revision {at_least_revision} is ahead of the latest revision, {self.revision}"
                )
            return self.revision

    def note_written(self, revision: int) -> None:
        """This process committed `revision`: its next decision reads it, whatever the watcher says."""
        self._written = max(self._written, revision)

    def _catch_up(self) -> None:
        connection = self._connect()
        try:
            rows = connection.execute(_CHANGES_SINCE, {"revision": self.revision, "limit": MAX_REPLAYED_CHANGES + 1}).all()
        finally:
            connection.rollback()  # end the read transaction: the next read must see newer commits
        if len(rows) > MAX_REPLAYED_CHANGES:
            self._reset()  # far behind: forgetting everything is cheaper than replaying
            return
        for revision, kind, account, user in rows:
            if kind == CACHE_DROP_KIND:  # after a repair in the database: every process reads every fact again
                self._forget()
            self._evict(kind, account, user)
            self.revision = revision
            if kind == "policy.load":
                self.on_policy_change()

    def _reset(self) -> None:
        """Forget every cached fact and start from the latest revision."""
        self.watcher.changed(self.revision)  # what the watcher reports from now on is newer than what we read
        self._forget()
        connection = self._connect()
        try:
            self.revision = current_revision(connection)
        finally:
            connection.rollback()
        self.on_policy_change()

    def _forget(self) -> None:
        self._settings.clear()
        self._roles.clear()
        self._support.clear()
        self._keys.clear()
        self._unknown_keys.clear()

    def _evict(self, kind: str, account: str | None, user: str | None) -> None:
        if kind.startswith("api_key."):
            self._keys.clear()
            self._unknown_keys.clear()
        if account is not None:
            self._settings.pop(account, None)
            if user is not None:
                self._roles.pop((user, account), None)
        if user is not None:
            self._support.pop(user, None)

    # -- facts (the FactSource protocol) ------------------------------------

    @contextmanager
    def fresh(self, at_least_revision: int | None = None) -> Iterator[int]:
        """Hold the cache, synced, while a decision reads its facts; yields the revision they reflect."""
        with self.lock:
            yield self.sync(at_least_revision)

    def prefetch(self, user_id: str, account_id: str, other_user_id: str | None = None) -> None:
        """Read in one query whatever a decision about `user_id` (and `other_user_id`) on the account lacks."""
        missing = (
            account_id not in self._settings
            or (user_id, account_id) not in self._roles
            or user_id not in self._support
            or other_user_id is not None
            and ((other_user_id, account_id) not in self._roles or other_user_id not in self._support)
        )
        if not missing:
            return
        settings, role, support, other_role, other_support = self._fetch(
            lambda facts: facts.everything(user_id, account_id, other_user_id)
        )
        account_id, user_id = sys.intern(account_id), sys.intern(user_id)
        self._settings[account_id] = settings
        self._roles[user_id, account_id] = role
        self._support[user_id] = support
        if other_user_id is not None:
            other_user_id = sys.intern(other_user_id)
            self._roles[other_user_id, account_id] = other_role
            self._support[other_user_id] = other_support

    def account_settings(self, account_id: str) -> tuple[bool, bool] | None:
        try:
            return self._settings[account_id]
        except KeyError:
            value = self._fetch(lambda facts: facts.account_settings(account_id))
            self._settings[sys.intern(account_id)] = value
            return value

    def role(self, user_id: str, account_id: str) -> str | None:
        try:
            return self._roles[user_id, account_id]
        except KeyError:
            value = self._fetch(lambda facts: facts.role(user_id, account_id))
            self._roles[sys.intern(user_id), sys.intern(account_id)] = value  # ids repeat across facts: one copy
            return value

    def is_support_agent(self, user_id: str) -> bool:
        try:
            return self._support[user_id]
        except KeyError:
            value = self._fetch(lambda facts: facts.is_support_agent(user_id))
            self._support[sys.intern(user_id)] = value
            return value

    def api_key(self, key_id: str) -> tuple[str, str, str | None, str] | None:
        """(secret_sha256, scopes, revoked_at, name) of a stored key, or None; unknown ids are remembered, at
        most MAX_UNKNOWN_KEY_IDS of them (least recently presented forgotten first)."""
        with self.lock:
            stored = self._keys.get(key_id)
            if stored is not None:
                return stored
            if key_id in self._unknown_keys:
                self._unknown_keys.move_to_end(key_id)
                return None
            value = self._fetch(lambda facts: facts.api_key(key_id))
            if value is not None:
                self._keys[key_id] = value
                return value
            self._unknown_keys[key_id] = None
            if len(self._unknown_keys) > MAX_UNKNOWN_KEY_IDS:
                self._unknown_keys.popitem(last=False)
            return None

    # -- plumbing -----------------------------------------------------------

    def _fetch(self, read: Callable[[DbFacts], T]) -> T:
        """Read a missing fact from the database; a failure is `Unavailable`, never a guess."""
        if len(self._roles) + len(self._settings) + len(self._support) > MAX_CACHED_FACTS:
            self._settings.clear()
            self._roles.clear()
            self._support.clear()
        try:
            connection = self._connect()
            try:
                return read(DbFacts(connection))
            finally:
                if not connection.closed:
                    connection.rollback()
        except (SQLAlchemyError, sqlite3.Error, psycopg.Error) as error:  # the cold read runs on the driver itself
            self._drop_connection()
            raise Unavailable(f"the database cannot be read: {_short(error)}") from error

    def _connect(self) -> Connection:
        if self._connection is None or self._connection.closed:
            self._connection = self.db.engine.connect()
            if not self.db.is_sqlite:
                # Every read of the cache is one statement (one snapshot): without a transaction around it,
                # a cold decision is one round trip to PostgreSQL, not two (no ROLLBACK after it).
                self._connection = self._connection.execution_options(isolation_level="AUTOCOMMIT")
        return self._connection

    def _drop_connection(self) -> None:
        if self._connection is not None:
            try:
                self._connection.invalidate()
                self._connection.close()
            except SQLAlchemyError:
                pass
            self._connection = None

    def _after_fork(self) -> None:
        # A process forked from the one that built the cache (gunicorn --preload)
        # must not share its connections or its watcher thread.
        pid = os.getpid()
        if pid != self._pid:
            self._pid = pid
            self._connection = None
            self.revision = -1
            self.watcher.start()

    def close(self) -> None:
        with self.lock:
            self.watcher.stop()
            self._drop_connection()



def _short(error: BaseException) -> str:
    return str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__

