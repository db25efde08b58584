"""Do the fact tables hold what the change log records? A streamed, sorted merge in constant memory.

The log is read once more, sorted by account (then user), and folded one account
at a time into the settings and roles it records; the `accounts` and `memberships`
tables are read in the same order, and the three streams are merged. Support
agents are merged the same way by user. Every stream is a raw, server-side cursor
(no ORM object per row), so memory does not grow with the store: only one
account's members are held at a time. API keys, a handful, are compared in memory.

Every difference is counted; only the first `limit` are described.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

from sqlalchemy import Connection, text

STREAM_BATCH = 5000
SETTINGS_FIELDS = ("restrict_subscription_to_payment_manager", "auto_add_subscription_invoices_to_purchases")
ROLE_KINDS = ("account.create", "member.invite", "member.change_role", "member.remove")
SUPPORT_KINDS = ("support_agent.add", "support_agent.remove")
# `import` (bulk import) entries are read by what their `after` holds: settings, a role, a support agent.
IMPORT_KIND = "import"
END = object()


@dataclass
class Drift:
    """Differences between the tables and the log: how many, and the first `limit` in words."""

    limit: int
    count: int = 0
    shown: list[str] = field(default_factory=list)

    def add(self, difference: str) -> None:
        self.count += 1
        if len(self.shown) < self.limit:
            self.shown.append(difference)


def facts_drift(connection: Connection, limit: int = 20) -> Drift:
    """Where the fact tables differ from the facts the change log rebuilds (a change made behind its back).

    `connection` must be inside one read transaction (a single snapshot) for the
    streams to agree.
    """
    drift = Drift(limit)
    collate = _byte_order(connection)
    _merge_accounts(connection, collate, drift)
    _merge_support_agents(connection, collate, drift)
    _compare_api_keys(connection, drift)
    return drift


def _byte_order(connection: Connection) -> str:
    """The ORDER BY suffix that sorts as Python compares strings (code points): SQLite's default already does."""
    if connection.dialect.name != "postgresql":
        return ""
    collation = connection.exec_driver_sql(
        "SELECT datcollate FROM pg_database WHERE datname = current_database()"
    ).scalar_one()
    # C.UTF-8 (glibc, PostgreSQL's builtin provider) also sorts by code point.
    return "" if collation in ("C", "POSIX", "C.UTF-8", "C.utf8") else ' COLLATE "C"'


_cursor_names = itertools.count()


def stream_rows(connection: Connection, statement: str) -> Iterator[tuple]:
    """The rows of `statement` (no parameters) as plain tuples, fetched in batches from the driver's own cursor.

    PostgreSQL: a named (server-side) cursor, inside the connection's transaction.
    SQLite: its cursor steps through the result as it is read. No SQLAlchemy row is built.
    """
    connection.exec_driver_sql("SELECT 1")  # the transaction (and its snapshot) has begun
    driver = connection.connection.driver_connection
    if connection.dialect.name == "postgresql":
        cursor = driver.cursor(name=f"authz_stream_{next(_cursor_names)}")
    else:
        cursor = driver.cursor()
    try:
        cursor.execute(statement)
        while rows := cursor.fetchmany(STREAM_BATCH):
            yield from rows
    finally:
        cursor.close()


_stream = stream_rows


# -- accounts and their members ------------------------------------------------


def _logged_accounts(connection: Connection, collate: str) -> Iterator[tuple[str, tuple | None, dict[str, str]]]:
    """(account, its settings (name, restricted, auto_add) or None, {user: role}) as the log records them."""
    return _fold(
        _stream(
            connection,
            "SELECT account_id, user_id, revision, kind, after FROM changes WHERE account_id IS NOT NULL "
            f"ORDER BY account_id{collate}, revision",
        )
    )


def _fold(rows: Iterable[Any]) -> Iterator[tuple[str, tuple | None, dict[str, str]]]:
    """Entries sorted by account, then revision, folded into each account's settings and roles."""
    for account, entries in groupby(rows, key=lambda row: row[0]):
        settings: tuple | None = None
        roles: dict[str, str] = {}
        for _account, user, _revision, kind, after_text in entries:
            if kind not in ROLE_KINDS and kind != "billing_settings.update" and kind != IMPORT_KIND:
                continue
            after = _loads(after_text)
            if kind != "member.invite" and all(name in after for name in SETTINGS_FIELDS):
                name = after.get("name", settings[0] if settings else None)
                settings = (name, bool(after[SETTINGS_FIELDS[0]]), bool(after[SETTINGS_FIELDS[1]]))
            if kind == "account.create" and user is not None:
                roles[user] = "admin"
            elif kind != "billing_settings.update" and "role" in after and user is not None:
                if after["role"] is None:
                    roles.pop(user, None)
                else:
                    roles[user] = after["role"]
        yield account, settings, roles


def _stored_accounts(connection: Connection, collate: str) -> Iterator[tuple[str, tuple]]:
    for account, name, restricted, auto_add in _stream(
        connection,
        "SELECT id, name, restrict_subscription_to_payment_manager, auto_add_subscription_invoices_to_purchases "
        f"FROM accounts ORDER BY id{collate}",
    ):
        yield account, (name, bool(restricted), bool(auto_add))


def _stored_members(connection: Connection, collate: str) -> Iterator[tuple[str, dict[str, str]]]:
    rows = _stream(connection, f"SELECT account_id, user_id, role FROM memberships ORDER BY account_id{collate}")
    for account, members in groupby(rows, key=lambda row: row[0]):
        yield account, {user: role for _account, user, role in members}


def _merge_accounts(connection: Connection, collate: str, drift: Drift) -> None:
    logged = _logged_accounts(connection, collate)
    stored = _stored_accounts(connection, collate)
    members = _stored_members(connection, collate)
    log_next, table_next, members_next = next(logged, END), next(stored, END), next(members, END)
    while log_next is not END or table_next is not END or members_next is not END:
        account = min(item[0] for item in (log_next, table_next, members_next) if item is not END)
        logged_settings, logged_roles = None, {}
        stored_settings, stored_roles = None, {}
        if log_next is not END and log_next[0] == account:
            _account, logged_settings, logged_roles = log_next
            log_next = next(logged, END)
        if table_next is not END and table_next[0] == account:
            stored_settings = table_next[1]
            table_next = next(stored, END)
        if members_next is not END and members_next[0] == account:
            stored_roles = members_next[1]
            members_next = next(members, END)
        _compare("account", account, logged_settings, stored_settings, drift)
        for user in sorted(set(logged_roles) | set(stored_roles)):
            _compare("membership", (account, user), logged_roles.get(user), stored_roles.get(user), drift)


# -- support agents and API keys -------------------------------------------------


def _logged_support_agents(connection: Connection, collate: str) -> Iterator[str]:
    kinds = ", ".join(f"'{kind}'" for kind in (*SUPPORT_KINDS, IMPORT_KIND))
    rows = _stream(
        connection,
        f"SELECT user_id, revision, after FROM changes WHERE kind IN ({kinds}) AND user_id IS NOT NULL "
        f"AND account_id IS NULL ORDER BY user_id{collate}, revision",
    )
    for user, entries in groupby(rows, key=lambda row: row[0]):
        agent = False
        for _user, _revision, after_text in entries:
            after = _loads(after_text)
            if "support_agent" in after:
                agent = bool(after["support_agent"])
        if agent:
            yield user


def _merge_support_agents(connection: Connection, collate: str, drift: Drift) -> None:
    logged = _logged_support_agents(connection, collate)
    stored = (user for (user,) in _stream(connection, f"SELECT user_id FROM support_agents ORDER BY user_id{collate}"))
    for user, in_log, in_table in _sorted_union(logged, stored):
        if in_table and not in_log:
            drift.add(f"support agent {user}: in the table, not in the log")
        elif in_log and not in_table:
            drift.add(f"support agent {user}: in the log, not in the table")


def _sorted_union(left: Iterable[str], right: Iterable[str]) -> Iterator[tuple[str, bool, bool]]:
    """Each value of two sorted streams once, with whether each stream holds it."""
    left, right = iter(left), iter(right)
    a, b = next(left, END), next(right, END)
    while a is not END or b is not END:
        if b is END or (a is not END and a < b):
            yield a, True, False
            a = next(left, END)
        elif a is END or b < a:
            yield b, False, True
            b = next(right, END)
        else:
            yield a, True, True
            a, b = next(left, END), next(right, END)


def _compare_api_keys(connection: Connection, drift: Drift) -> None:
    logged: dict[str, tuple] = {}
    for kind, after_text in _stream(
        connection, "SELECT kind, after FROM changes WHERE kind IN ('api_key.create', 'api_key.revoke') ORDER BY revision"
    ):
        after = _loads(after_text)
        if "key" not in after:
            continue
        if kind == "api_key.create":
            logged[after["key"]] = (after.get("scopes"), False, after.get("secret_sha256"))
        elif after["key"] in logged:
            scopes, _revoked, secret = logged[after["key"]]
            logged[after["key"]] = (scopes, True, secret)
    stored = {
        key: (scopes, revoked_at is not None, secret)
        for key, scopes, revoked_at, secret in connection.execute(
            text("SELECT id, scopes, revoked_at, secret_sha256 FROM api_keys")
        )
    }
    for key in sorted(set(logged) | set(stored)):
        _compare("API key (scopes, revoked, secret sha256)", key, logged.get(key), stored.get(key), drift)


def _loads(after_text: str) -> dict:
    """An entry's `after` as a dict; an entry that holds anything else (a log written by hand) records no fact."""
    try:
        after = json.loads(after_text)
    except ValueError:
        return {}
    return after if isinstance(after, dict) else {}


def _compare(what: str, key: Any, logged: Any, stored: Any, drift: Drift) -> None:
    if logged == stored:
        return
    if stored is None:
        drift.add(f"{what} {key}: in the log ({logged}), not in the table")
    elif logged is None:
        drift.add(f"{what} {key}: in the table ({stored}), not in the log")
    else:
        drift.add(f"{what} {key}: the table says {stored}, the log says {logged}")


def account_drift(connection: Connection, account: str, limit: int = 20) -> Drift:
    """`facts_drift` for one account and its members: what an answer about that account rests on."""
    drift = Drift(limit)
    settings, roles = None, {}
    for _account, logged_settings, logged_roles in _logged_accounts_of(connection, account):
        settings, roles = logged_settings, logged_roles
    row = connection.execute(
        text(
            "SELECT name, restrict_subscription_to_payment_manager, auto_add_subscription_invoices_to_purchases "
            "FROM accounts WHERE id = :account"
        ),
        {"account": account},
    ).first()
    stored_settings = (row[0], bool(row[1]), bool(row[2])) if row else None
    stored_roles = dict(
        connection.execute(text("SELECT user_id, role FROM memberships WHERE account_id = :account"), {"account": account}).all()
    )
    _compare("account", account, settings, stored_settings, drift)
    for user in sorted(set(roles) | set(stored_roles)):
        _compare("membership", (account, user), roles.get(user), stored_roles.get(user), drift)
    return drift


def _logged_accounts_of(connection: Connection, account: str) -> Iterator[tuple[str, tuple | None, dict[str, str]]]:
    rows = connection.execute(
        text(
            "SELECT account_id, user_id, revision, kind, after FROM changes WHERE account_id = :account ORDER BY revision"
        ),
        {"account": account},
    )
    return _fold(rows)
