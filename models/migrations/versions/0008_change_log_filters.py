"""The change-log page's filters: by who asked (acting_user) and by time, each in revision order.

Filtering by user matches the user a change is about or the one who asked for it
(`changes_by_user` covers the first); a date range reads the entries of that time.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("changes_by_acting_user", "changes", ["acting_user", "revision"])
    op.create_index("changes_by_time", "changes", ["at"])
    bind = op.get_bind()
    if bind.dialect.name == "sqlite" and bind.exec_driver_sql(
        "SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'"
    ).first():
        # SQLite plans with the statistics ANALYZE gathered: without them for the new indexes, it would
        # take a date range covering most of the log for a selective one (PostgreSQL analyses by itself).
        bind.exec_driver_sql("ANALYZE changes")


def downgrade() -> None:
    op.drop_index("changes_by_time", table_name="changes")
    op.drop_index("changes_by_acting_user", table_name="changes")
