"""Mailbox sources (IMAP): what was taken in from where, and each source's lease and state.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "imap_messages",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("source", sa.String(40), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=False),
        sa.Column("uid", sa.BigInteger(), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("message_id", sa.Text()),
        sa.Column("record_id", sa.BigInteger(), nullable=False),
        sa.Column("taken_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint(
            "source", "uidvalidity", "uid", name="uq_imap_messages_source_uidvalidity_uid"
        ),
    )
    op.create_index("ix_imap_messages_source_digest", "imap_messages", ["source", "digest"])
    op.create_index("ix_imap_messages_record_id", "imap_messages", ["record_id"])
    op.create_table(
        "imap_sources",
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("holder", sa.String(120)),
        sa.Column("lease_until", sa.DateTime()),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger()),
        sa.Column("changed_at", sa.DateTime(), nullable=False),
        sa.Column("last_ok_at", sa.DateTime()),
    )


def downgrade() -> None:
    op.drop_table("imap_sources")
    op.drop_index("ix_imap_messages_record_id", "imap_messages")
    op.drop_index("ix_imap_messages_source_digest", "imap_messages")
    op.drop_table("imap_messages")
