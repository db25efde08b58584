"""The decision log: every decision answered and every write refused, one row each (SPEC "Decision log").

On PostgreSQL the table is partitioned by day on `time`, so retention drops whole days
(no mass DELETE, no bloat) and a query by actor or account over a month reads one small
index per day; the writer creates each day's partition ahead of time
(`models/decision_log.py`). On SQLite it is a plain table with the same indexes, and
retention deletes old rows in small batches.

Rows are read in `id` order (the order they were recorded in, which is time order to
within the writer's flush interval), so the lookups are indexed on (actor, id) and
(account, id), and on time where SQLite has no partitions to prune by.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_COLUMNS = """
    id BIGINT NOT NULL DEFAULT nextval('decisions_id_seq'),
    time TIMESTAMPTZ NOT NULL,
    request_id VARCHAR(64),
    api_key VARCHAR(200),
    endpoint VARCHAR(64) NOT NULL,
    actor VARCHAR(200),
    action VARCHAR(64),
    resource TEXT NOT NULL,
    account VARCHAR(200),
    allowed BOOLEAN NOT NULL,
    code VARCHAR(64),
    revision BIGINT,
    policy VARCHAR(64)
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE SEQUENCE decisions_id_seq AS BIGINT")
        op.execute(f"CREATE TABLE decisions ({_COLUMNS}) PARTITION BY RANGE (time)")
        op.execute("ALTER SEQUENCE decisions_id_seq OWNED BY decisions.id")
    else:
        op.create_table(
            "decisions",
            sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
            sa.Column("time", sa.DateTime(timezone=True), nullable=False),
            sa.Column("request_id", sa.String(64)),
            sa.Column("api_key", sa.String(200)),
            sa.Column("endpoint", sa.String(64), nullable=False),
            sa.Column("actor", sa.String(200)),
            sa.Column("action", sa.String(64)),
            sa.Column("resource", sa.Text(), nullable=False),
            sa.Column("account", sa.String(200)),
            sa.Column("allowed", sa.Boolean(), nullable=False),
            sa.Column("code", sa.String(64)),
            sa.Column("revision", sa.BigInteger()),
            sa.Column("policy", sa.String(64)),
        )
        op.create_index("decisions_by_time", "decisions", ["time"])
    # On a partitioned table, each index is created on every partition, present and future.
    op.create_index("decisions_by_actor", "decisions", ["actor", "id"])
    op.create_index("decisions_by_account", "decisions", ["account", "id"])
    if op.get_bind().dialect.name == "postgresql":
        op.create_index("decisions_by_id", "decisions", ["id"])  # the `after` cursor alone, and the newest first


def downgrade() -> None:
    op.drop_table("decisions")  # its partitions, indexes and sequence go with it
