"""Retention: legal holds, purge batches, and the tombstone mark of a purged message.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "legal_holds",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("scope", sa.String(20), nullable=False),
        sa.Column("value", sa.String(320), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("placed_at", sa.DateTime(), nullable=False),
        sa.Column("released_at", sa.DateTime()),
        sa.Column("release_reason", sa.Text()),
        sa.Column("log_seq", sa.BigInteger()),
        sa.Column("release_log_seq", sa.BigInteger()),
        sa.UniqueConstraint("log_seq", name="uq_legal_holds_log_seq"),
        sa.UniqueConstraint("release_log_seq", name="uq_legal_holds_release_log_seq"),
    )
    op.create_table(
        "archive_purges",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("purged_at", sa.DateTime(), nullable=False),
        sa.Column("message_ids", sa.Text(), nullable=False),
        sa.Column("log_seq", sa.BigInteger()),
        sa.UniqueConstraint("log_seq", name="uq_archive_purges_log_seq"),
    )
    with op.batch_alter_table("messages") as messages:
        messages.add_column(sa.Column("purged_at", sa.DateTime()))


def downgrade() -> None:
    with op.batch_alter_table("messages") as messages:
        messages.drop_column("purged_at")
    op.drop_table("archive_purges")
    op.drop_table("legal_holds")
