"""Revisions are 64-bit integers on PostgreSQL too (SQLite's INTEGER already is).

The API takes revisions up to 2^63 - 1; a 32-bit column made comparing with a
larger one an error instead of an answer.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.alter_column("changes", "revision", type_=sa.BigInteger(), existing_type=sa.Integer(), existing_nullable=False)
    op.alter_column(
        "revision_counter", "revision", type_=sa.BigInteger(), existing_type=sa.Integer(), existing_nullable=False
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.alter_column("revision_counter", "revision", type_=sa.Integer(), existing_type=sa.BigInteger())
    op.alter_column("changes", "revision", type_=sa.Integer(), existing_type=sa.BigInteger())
