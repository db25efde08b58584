"""PostgreSQL: the change log notifies listeners once per statement, with the statement's latest revision.

Migration 0004's trigger ran once per row: a bulk import's COPY of a chunk's 20,000 entries
queued 20,000 trigger events and 20,000 distinct notifications, each written to the
notification queue at commit, for listeners that keep only the largest revision they hear
(`models.watchers.PostgresWatcher`). One notification per statement, carrying the largest
revision it inserted, tells them the same. A statement that inserts nothing notifies nothing.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER authz_notify_change ON changes")
    op.execute("DROP FUNCTION authz_notify_change()")
    op.execute(
        """
        CREATE FUNCTION authz_notify_changes() RETURNS trigger AS $$
        DECLARE
            latest bigint;
        BEGIN
            SELECT max(revision) INTO latest FROM inserted;
            IF latest IS NOT NULL THEN
                PERFORM pg_notify('authz_changes', latest::text);
            END IF;
            RETURN NULL;
        END
        $$ LANGUAGE plpgsql
        """
    )
    op.execute(
        "CREATE TRIGGER authz_notify_changes AFTER INSERT ON changes "
        "REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION authz_notify_changes()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER authz_notify_changes ON changes")
    op.execute("DROP FUNCTION authz_notify_changes()")
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
