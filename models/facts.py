"""Reading facts: straight from the database, or from a per-process cache kept fresh by the change log.

The cache holds the few facts decisions read (an account's settings, a user's
role on an account, whether a user is a support agent, an API key). It knows
the revision it reflects. Before each decision it asks its watcher whether
another connection has written since; if so, it reads the new change-log
entries and evicts every fact they touched. A request that carries
`at_least_revision: N` makes it read the log until it reflects N, so the
answer is never older than N.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import psycopg
from sqlalchemy import Connection, bindparam, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from models.changelog import NOTIFY_CHANNEL, current_revision
from models.db import POSTGRES_CONNECT_ARGS, Database
from models.errors import StoreError, Unavailable
from models.tables import Account, ApiKey, Change, Membership, SupportAgent
from policies.world import ROLES

_SETTINGS = select(
    Account.restrict_subscription_to_payment_manager, Account.auto_add_subscription_invoices_to_purchases
).where(Account.id == bindparam("account"))
_ROLE = select(Membership.role).where(Membership.user_id == bindparam("user"), Membership.account_id == bindparam("account"))
_SUPPORT = select(SupportAgent.user_id).where(SupportAgent.user_id == bindparam("user"))

def _scalar(query):
    return query.scalar_subquery()


# Everything one decision may read, in one round trip (a cold decision on PostgreSQL: one query, not five).
_EVERYTHING = select(
    _scalar(select(Account.restrict_subscription_to_payment_manager).where(Account.id == bindparam("account"))),
    _scalar(select(Account.auto_add_subscription_invoices_to_purchases).where(Account.id == bindparam("account"))),
    _scalar(_ROLE),
    _scalar(select(func.count()).select_from(SupportAgent).where(SupportAgent.user_id == bindparam("user"))),
    _scalar(
        select(Membership.role).where(
            Membership.user_id == bindparam("other"), Membership.account_id == bindparam("account")
        )
    ),
    _scalar(select(func.count()).select_from(SupportAgent).where(SupportAgent.user_id == bindparam("other"))),
)
_API_KEY = select(ApiKey.secret_sha256, ApiKey.scopes, ApiKey.revoked_at).where(ApiKey.id == bindparam("key"))
_CHANGES_SINCE = (
    select(Change.revision, Change.kind, Change.account_id, Change.user_id)
    .where(Change.revision > bindparam("revision"))
    .order_by(Change.revision)
    .limit(bindparam("limit"))
)
MAX_CACHED_FACTS = 2_000_000
# A cache of every fact of a large store holds hundreds of thousands of values: share the few distinct ones.
_SETTINGS_VALUES = {(r, a): (r, a) for r in (False, True) for a in (False, True)}
_ROLE_VALUES = {role: role for role in ROLES}
MAX_REPLAYED_CHANGES = 10_000
T = TypeVar("T")


class DbFacts:
    """Facts read directly on a connection or in a session (the write path uses its own transaction)."""

    def __init__(self, connection: Connection | Session) -> None:
        self.connection = connection

    def account_settings(self, account_id: str) -> tuple[bool, bool] | None:
        row = self.connection.execute(_SETTINGS, {"account": account_id}).first()
        return _SETTINGS_VALUES[bool(row[0]), bool(row[1])] if row is not None else None

    def role(self, user_id: str, account_id: str) -> str | None:
        role = self.connection.execute(_ROLE, {"user": user_id, "account": account_id}).scalar()
        return _ROLE_VALUES.get(role, role)

    def is_support_agent(self, user_id: str) -> bool:
        return self.connection.execute(_SUPPORT, {"user": user_id}).first() is not None

    def everything(self, user_id: str, account_id: str, other_id: str) -> tuple:
        """(settings, user's role, user is support, other's role, other is support) in one query."""
        restricted, auto_add, role, support, other_role, other_support = self.connection.execute(
            _EVERYTHING, {"account": account_id, "user": user_id, "other": other_id}
        ).one()
        settings = _SETTINGS_VALUES[bool(restricted), bool(auto_add)] if restricted is not None else None
        return (
            settings,
            _ROLE_VALUES.get(role, role),
            bool(support),
            _ROLE_VALUES.get(other_role, other_role),
            bool(other_support),
        )

    def api_key(self, key_id: str) -> tuple[str, str, str | None] | None:
        row = self.connection.execute(_API_KEY, {"key": key_id}).first()
        return (row[0], row[1], row[2]) if row is not None else None


class TransactionFacts(DbFacts):
    """The facts one write transaction authorizes with, each read once.

    The transaction holds its account's row lock, so nothing else changes
    them meanwhile; the locked account's settings come with its row.
    """

    def __init__(self, session: Session) -> None:
        super().__init__(session)
        self.settings: dict[str, tuple[bool, bool] | None] = {}
        self._roles: dict[tuple[str, str], str | None] = {}
        self._support: dict[str, bool] = {}

    def account_settings(self, account_id: str) -> tuple[bool, bool] | None:
        if account_id not in self.settings:
            self.settings[account_id] = super().account_settings(account_id)
        return self.settings[account_id]

    def role(self, user_id: str, account_id: str) -> str | None:
        if (user_id, account_id) not in self._roles:
            self._roles[user_id, account_id] = super().role(user_id, account_id)
        return self._roles[user_id, account_id]

    def is_support_agent(self, user_id: str) -> bool:
        if user_id not in self._support:
            self._support[user_id] = super().is_support_agent(user_id)
        return self._support[user_id]


class RevisionAhead(StoreError):
    status = 400
    code = "revision_ahead"


class FactCache:
    """A process's cache of facts, and the revision it reflects. Safe to share between threads."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.lock = threading.RLock()
        self.watcher = SqliteWatcher(db) if db.is_sqlite else PostgresWatcher(db)
        self.revision = -1  # unknown until the first sync
        self._written = 0  # the latest revision this process wrote itself
        # Told when the log records a new policy (or after a reset): see service.policy_keeper.
        self.on_policy_change: Callable[[], None] = lambda: None
        self._settings: dict[str, tuple[bool, bool] | None] = {}
        self._roles: dict[tuple[str, str], str | None] = {}
        self._support: dict[str, bool] = {}
        self._keys: dict[str, tuple[str, str, str | None] | None] = {}
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
            self._evict(kind, account, user)
            self.revision = revision
            if kind == "policy.load":
                self.on_policy_change()

    def _reset(self) -> None:
        """Forget every cached fact and start from the latest revision."""
        self.watcher.changed(self.revision)  # what the watcher reports from now on is newer than what we read
        self._settings.clear()
        self._roles.clear()
        self._support.clear()
        self._keys.clear()
        connection = self._connect()
        try:
            self.revision = current_revision(connection)
        finally:
            connection.rollback()
        self.on_policy_change()

    def _evict(self, kind: str, account: str | None, user: str | None) -> None:
        if kind.startswith("api_key."):
            self._keys.clear()
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

    def prefetch(self, user_id: str, account_id: str, other_id: str | None = None) -> None:
        """Read in one query whatever a decision about `user_id` (and `other_id`) on the account lacks."""
        missing = (
            account_id not in self._settings
            or (user_id, account_id) not in self._roles
            or user_id not in self._support
            or other_id is not None and ((other_id, account_id) not in self._roles or other_id not in self._support)
        )
        if not missing:
            return
        settings, role, support, other_role, other_support = self._fetch(
            lambda facts: facts.everything(user_id, account_id, other_id or "")
        )
        account_id, user_id = sys.intern(account_id), sys.intern(user_id)
        self._settings[account_id] = settings
        self._roles[user_id, account_id] = role
        self._support[user_id] = support
        if other_id is not None:
            other_id = sys.intern(other_id)
            self._roles[other_id, account_id] = other_role
            self._support[other_id] = other_support

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

    def api_key(self, key_id: str) -> tuple[str, str, str | None] | None:
        with self.lock:
            try:
                return self._keys[key_id]
            except KeyError:
                value = self._keys[key_id] = self._fetch(lambda facts: facts.api_key(key_id))
                return value

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
        except SQLAlchemyError as error:
            self._drop_connection()
            raise Unavailable(f"the database cannot be read: {_short(error)}") from error

    def _connect(self) -> Connection:
        if self._connection is None or self._connection.closed:
            self._connection = self.db.engine.connect()
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


def read_revision(db: Database) -> int:
    with db.read() as connection:
        return current_revision(connection)


def _short(error: BaseException) -> str:
    return str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__

