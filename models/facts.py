"""Reading the facts a decision needs, straight from the database (the FactSource protocol of `policies`).

`DbFacts` reads on any connection or session; `TransactionFacts` reads each fact once
within one write transaction. The per-process cache in front of them is `fact_cache.py`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Select, bindparam, literal_column, select
from sqlalchemy.orm import Session

from models.changelog import current_revision
from models.database import Database
from models.tables import STORED_ROLES, AccountRow, ApiKeyRow, MembershipRow, SupportAgentRow

_SETTINGS = select(
    AccountRow.restrict_subscription_to_payment_manager, AccountRow.auto_add_subscription_invoices_to_purchases
).where(AccountRow.id == bindparam("account"))


def _role_of(user: str) -> Select:
    """The role on the account bound as `account` of the user bound as `user` (or `other`)."""
    return select(MembershipRow.role).where(
        MembershipRow.user_id == bindparam(user), MembershipRow.account_id == bindparam("account")
    )


def _support_agent(user: str) -> Select:
    """The support agent row of the user bound as `user` (or `other`), if there is one."""
    return select(SupportAgentRow.user_id).where(SupportAgentRow.user_id == bindparam(user))


_ROLE = _role_of("user")
_SUPPORT = _support_agent("user")


# Everything one decision may read, in one round trip (a cold decision on PostgreSQL: one query, not five): the
# account's row once (joined to a one-row select, so a missing account is a row of NULLs, not no row), the user's
# role and support flag, and only when the resource names another user (a membership, a payment method), theirs.
_ONE_ROW = select(literal_column("1").label("one")).subquery("one")
_EVERYTHING = (
    select(
        AccountRow.restrict_subscription_to_payment_manager,
        AccountRow.auto_add_subscription_invoices_to_purchases,
        _role_of("user").scalar_subquery(),
        _support_agent("user").exists(),
    )
    .select_from(_ONE_ROW)
    .outerjoin(AccountRow, AccountRow.id == bindparam("account"))
)
_EVERYTHING_AND_OTHER = _EVERYTHING.add_columns(_role_of("other").scalar_subquery(), _support_agent("other").exists())
_API_KEY = select(ApiKeyRow.secret_sha256, ApiKeyRow.scopes, ApiKeyRow.revoked_at, ApiKeyRow.name).where(ApiKeyRow.id == bindparam("key"))
# A cache of every fact of a large store holds hundreds of thousands of values: share the few distinct ones.
_SETTINGS_VALUES = {(r, a): (r, a) for r in (False, True) for a in (False, True)}
_ROLE_VALUES = {role: role for role in STORED_ROLES}


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

    def everything(self, user_id: str, account_id: str, other_user_id: str | None) -> tuple:
        """(settings, user's role, user is support, other's role, other is support) in one query.

        Without another user (`None`), their role is None and they are no support agent: not read.
        """
        values = {"account": account_id, "user": user_id}
        statement = _EVERYTHING
        if other_user_id is not None:
            values["other"], statement = other_user_id, _EVERYTHING_AND_OTHER
        if isinstance(self.connection, Connection):
            # A cold decision's one statement, sent on the driver's own connection: the statement is compiled
            # once per dialect and PostgreSQL keeps it prepared, and no SQLAlchemy execution machinery runs.
            row = _driver_row(self.connection, statement, values)
        else:
            row = self.connection.execute(statement, values).one()
        restricted, auto_add, role, support, *other = row
        other_role, other_support = other or (None, False)
        settings = _SETTINGS_VALUES[bool(restricted), bool(auto_add)] if restricted is not None else None
        return (
            settings,
            _ROLE_VALUES.get(role, role),
            bool(support),
            _ROLE_VALUES.get(other_role, other_role),
            bool(other_support),
        )

    def api_key(self, key_id: str) -> tuple[str, str, str | None, str] | None:
        """(secret's sha256, scopes, revoked at or None, name) of a stored key."""
        row = self.connection.execute(_API_KEY, {"key": key_id}).first()
        return (row[0], row[1], row[2], row[3]) if row is not None else None


_COMPILED: dict[tuple[str, Select], tuple[str, tuple[str, ...] | None]] = {}


def _driver_row(connection: Connection, statement: Select, values: dict[str, str]) -> tuple:
    """`statement`'s one row, executed on the DBAPI connection under `connection` (no transaction is begun)."""
    dialect = connection.dialect
    key = (dialect.name, statement)
    try:
        sql, positions = _COMPILED[key]
    except KeyError:
        compiled = statement.compile(dialect=dialect)
        sql, positions = _COMPILED[key] = (str(compiled), compiled.positiontup)
    driver = connection.connection.driver_connection
    parameters = [values[name] for name in positions] if positions else values
    if dialect.name == "postgresql":
        return driver.execute(sql, parameters, prepare=True).fetchone()
    return driver.execute(sql, parameters).fetchone()


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


@contextmanager
def facts_now(db: Database) -> Iterator[DbFacts]:
    """The stored facts as they are, read in one read transaction."""
    with db.read() as session:
        yield DbFacts(session)


def read_revision(db: Database) -> int:
    """The latest revision, read from the database now."""
    with db.read() as connection:
        return current_revision(connection)
