"""Indexes for reading the change log by user and by kind (time travel, the recorded policy).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("changes_by_user", "changes", ["user_id", "revision"])
    op.create_index("changes_by_kind", "changes", ["kind", "revision"])


def downgrade() -> None:
    op.drop_index("changes_by_kind", "changes")
    op.drop_index("changes_by_user", "changes")
