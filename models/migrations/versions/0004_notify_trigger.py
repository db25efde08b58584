"""PostgreSQL: every change-log entry notifies listeners at commit, from a trigger.

The write path no longer sends the notification itself (one statement less
while the revision counter is locked), and no entry, however inserted, can
be missed by the workers' caches.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        """
        CREATE FUNCTION authz_notify_change() RETURNS trigger AS $$
        BEGIN
            PERFORM pg_notify('authz_changes', NEW.revision::text);
            RETURN NEW;
        END
        $$ LANGUAGE plpgsql
        """
    )
    op.execute(
        "CREATE TRIGGER authz_notify_change AFTER INSERT ON changes "
        "FOR EACH ROW EXECUTE FUNCTION authz_notify_change()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER authz_notify_change ON changes")
    op.execute("DROP FUNCTION authz_notify_change()")
