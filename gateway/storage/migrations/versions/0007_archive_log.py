"""The archive's Merkle log: its leaves, its head, signed checkpoints and their keys, and
each message's place in the log.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "archive_log",
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("ref_id", sa.BigInteger(), nullable=False),
        sa.Column("leaf_hash", sa.String(64), nullable=False),
        sa.Column("appended_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("kind", "ref_id", name="uq_archive_log_kind_ref_id"),
    )
    head = op.create_table(
        "archive_log_head",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("tree_size", sa.BigInteger(), nullable=False),
        sa.Column("frontier", sa.LargeBinary(), nullable=False),
    )
    # The one head row, there from the start: appenders lock it, none has to create it.
    op.bulk_insert(head, [{"id": 1, "tree_size": 0, "frontier": b""}])
    op.create_table(
        "archive_checkpoints",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("tree_size", sa.BigInteger(), nullable=False),
        sa.Column("root_hash", sa.String(64), nullable=False),
        sa.Column("signed_at", sa.DateTime(), nullable=False),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
        sa.UniqueConstraint("tree_size", name="uq_archive_checkpoints_tree_size"),
    )
    op.create_table(
        "archive_keys",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("private_key", sa.Text(), nullable=False),
        sa.Column("public_key", sa.String(64), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("key_id", name="uq_archive_keys_key_id"),
    )
    with op.batch_alter_table("messages") as messages:
        messages.add_column(sa.Column("log_seq", sa.BigInteger()))
        messages.create_unique_constraint("uq_messages_log_seq", ["log_seq"])


def downgrade() -> None:
    with op.batch_alter_table("messages") as messages:
        messages.drop_constraint("uq_messages_log_seq", type_="unique")
        messages.drop_column("log_seq")
    for table in ("archive_keys", "archive_checkpoints", "archive_log_head", "archive_log"):
        op.drop_table(table)
