"""Covering indexes for listing a partner's accounts: memberships by user with their role, accounts' settings.

Listing reads the two indexes alone, never the tables.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("memberships_by_user", "memberships")
    op.create_index("memberships_by_user", "memberships", ["user_id", "account_id", "role"])
    op.create_index(
        "account_settings",
        "accounts",
        ["id", "restrict_subscription_to_payment_manager", "auto_add_subscription_invoices_to_purchases"],
    )


def downgrade() -> None:
    op.drop_index("account_settings", "accounts")
    op.drop_index("memberships_by_user", "memberships")
    op.create_index("memberships_by_user", "memberships", ["user_id", "account_id"])
