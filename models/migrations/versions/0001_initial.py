"""The initial schema: accounts, memberships, support agents, API keys, change log.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ROLE_CHECK = "role IN ('admin', 'collaborator', 'reader', 'payment_manager')"


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("restrict_subscription_to_payment_manager", sa.Boolean(), nullable=False),
        sa.Column("auto_add_subscription_invoices_to_purchases", sa.Boolean(), nullable=False),
    )
    op.create_table(
        "memberships",
        sa.Column("account_id", sa.String(200), sa.ForeignKey("accounts.id"), primary_key=True),
        sa.Column("user_id", sa.String(200), primary_key=True),
        sa.Column("role", sa.String(32), nullable=False),
        sa.CheckConstraint(ROLE_CHECK, name="known_role"),
    )
    op.create_index(
        "one_payment_manager_per_account",
        "memberships",
        ["account_id"],
        unique=True,
        sqlite_where=sa.text("role = 'payment_manager'"),
        postgresql_where=sa.text("role = 'payment_manager'"),
    )
    op.create_index("memberships_by_user", "memberships", ["user_id", "account_id"])
    op.create_table("support_agents", sa.Column("user_id", sa.String(200), primary_key=True))
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        sa.Column("scopes", sa.String(64), nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("revoked_at", sa.String(40), nullable=True),
    )
    op.create_table(
        "changes",
        sa.Column("revision", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("at", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("account_id", sa.String(200), nullable=True),
        sa.Column("user_id", sa.String(200), nullable=True),
        sa.Column("acting_user", sa.String(200), nullable=True),
        sa.Column("api_key", sa.String(64), nullable=True),
        sa.Column("before", sa.Text(), nullable=False),
        sa.Column("after", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("changes_by_account", "changes", ["account_id", "revision"])
    counter = op.create_table(
        "revision_counter",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("revision", sa.Integer(), nullable=False),
    )
    op.bulk_insert(counter, [{"id": 1, "revision": 0}])


def downgrade() -> None:
    for table in ("revision_counter", "changes", "api_keys", "support_agents", "memberships", "accounts"):
        op.drop_table(table)
