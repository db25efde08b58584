"""Checkpoints of the change log: signed anchors (revision, hash) and the verifications made.

`checkpoints`: the head at least every 1,000 changes or 5 minutes, signed with
HMAC-SHA256 when `AUTHZ_CHECKPOINT_KEY` is set. `verifications`: each walk of the
chain (complete, from the first entry, or the tail from the last one verified)
with what it found, so a page checks only the entries written since.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "checkpoints",
        sa.Column("revision", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("at", sa.String(40), nullable=False),
        sa.Column("signature", sa.String(64), nullable=True),
    )
    op.create_table(
        "verifications",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("at", sa.String(40), nullable=False),
        sa.Column("complete", sa.Boolean(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("checked_from", sa.BigInteger(), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("entries", sa.BigInteger(), nullable=False),
        sa.Column("first_bad_revision", sa.BigInteger(), nullable=True),
        sa.Column("problem", sa.Text(), nullable=True),
        sa.Column("drift_count", sa.BigInteger(), nullable=False),
        sa.Column("drift", sa.Text(), nullable=False),
        sa.Column("signature", sa.String(64), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("verifications")
    op.drop_table("checkpoints")
