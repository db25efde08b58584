"""The stored facts as tables: accounts, memberships, support agents, API keys, the change log, its counter and checkpoints.

Each class is named after its table's row (`AccountRow`), so it is never taken for the
Polar class of the same business name (`policies.world.Account`).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ID_LENGTH = 200
# The roles a membership may hold, as the schema's CHECK constraint (migration 0001) stores them.
# They are the policy's roles (policies.world.ROLES; a test keeps the two equal): storage does not
# import the policy, and changing this tuple needs a migration.
STORED_ROLES = ("admin", "collaborator", "reader", "payment_manager")
ROLE_CHECK = "role IN (" + ", ".join(f"'{role}'" for role in STORED_ROLES) + ")"


class Base(DeclarativeBase):
    pass


class AccountRow(Base):
    """A client company's workspace, with its billing settings."""

    __tablename__ = "accounts"
    __table_args__ = (
        # Covering: listing a partner's accounts reads the settings from the index alone.
        Index(
            "account_settings",
            "id",
            "restrict_subscription_to_payment_manager",
            "auto_add_subscription_invoices_to_purchases",
        ),
    )

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    name: Mapped[str] = mapped_column(String(ID_LENGTH))
    restrict_subscription_to_payment_manager: Mapped[bool] = mapped_column(default=False)
    auto_add_subscription_invoices_to_purchases: Mapped[bool] = mapped_column(default=True)


class MembershipRow(Base):
    """One role per user and account."""

    __tablename__ = "memberships"
    __table_args__ = (
        CheckConstraint(ROLE_CHECK, name="known_role"),
        # Invariant 4, held by the schema as well as by the write path.
        Index(
            "one_payment_manager_per_account",
            "account_id",
            unique=True,
            sqlite_where=text("role = 'payment_manager'"),
            postgresql_where=text("role = 'payment_manager'"),
        ),
        # The accounts of one user, in id order, with the role: all that /v1/list reads.
        Index("memberships_by_user", "user_id", "account_id", "role"),
    )

    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    role: Mapped[str] = mapped_column(String(32))


class SupportAgentRow(Base):
    """A user holding the global `support` role (customer service)."""

    __tablename__ = "support_agents"

    user_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)


class ApiKeyRow(Base):
    """A calling service's key. Only the sha256 of its secret is stored."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(ID_LENGTH))
    secret_sha256: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[str] = mapped_column(String(40))
    revoked_at: Mapped[str | None] = mapped_column(String(40), default=None)


class ChangeRow(Base):
    """One entry of the append-only change log; `revision` counts every change, without gaps.

    Each entry's `hash` covers its content and the previous entry's hash, so
    editing, deleting or reordering entries is detectable (`verification.verify`).
    """

    __tablename__ = "changes"
    __table_args__ = (
        Index("changes_by_account", "account_id", "revision"),
        Index("changes_by_user", "user_id", "revision"),
        Index("changes_by_kind", "kind", "revision"),
        Index("changes_by_acting_user", "acting_user", "revision"),  # migration 0008
        Index("changes_by_time", "at"),  # migration 0008
    )

    revision: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(40))
    account_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    user_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    acting_user: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    api_key: Mapped[str | None] = mapped_column(String(64))
    before: Mapped[str] = mapped_column(Text)
    after: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class RevisionCounterRow(Base):
    """A single row holding the latest revision.

    Every write locks it and increments it just before committing, so
    revisions are handed out in commit order, once each, with no gaps.
    """

    __tablename__ = "revision_counter"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    revision: Mapped[int] = mapped_column(BigInteger)


class CheckpointRow(Base):
    """The change log's head at one moment, signed (HMAC-SHA256) when the service has a checkpoint key."""

    __tablename__ = "checkpoints"

    revision: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(64))
    at: Mapped[str] = mapped_column(String(40))
    signature: Mapped[str | None] = mapped_column(String(64), default=None)


class VerificationRow(Base):
    """One walk of the chain: complete (from the first entry, with the fact tables) or the tail since the last one.

    `revision`/`hash`: the last entry it checked; `drift`: a JSON list of the first differences.
    """

    __tablename__ = "verifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[str] = mapped_column(String(40))
    complete: Mapped[bool] = mapped_column()
    ok: Mapped[bool] = mapped_column()
    checked_from: Mapped[int] = mapped_column(BigInteger)
    revision: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    entries: Mapped[int] = mapped_column(BigInteger)
    first_bad_revision: Mapped[int | None] = mapped_column(BigInteger, default=None)
    problem: Mapped[str | None] = mapped_column(Text, default=None)
    drift_count: Mapped[int] = mapped_column(BigInteger)
    drift: Mapped[str] = mapped_column(Text)
    signature: Mapped[str | None] = mapped_column(String(64), default=None)
