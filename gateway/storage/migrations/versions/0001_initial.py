"""Initial schema: registry, archive, outbound queue.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _id() -> sa.Column[int]:
    return sa.Column("id", BigId, primary_key=True)


def upgrade() -> None:
    op.create_table(
        "sellers",
        _id(),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "buyers",
        _id(),
        sa.Column("address", sa.String(254), nullable=False, unique=True),
        sa.Column("opted_out", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "seller_mailboxes",
        _id(),
        sa.Column("seller_id", BigId, sa.ForeignKey("sellers.id"), nullable=False, index=True),
        sa.Column("address", sa.String(254), nullable=False, unique=True),
    )
    op.create_table(
        "pairs",
        _id(),
        sa.Column("seller_id", BigId, sa.ForeignKey("sellers.id"), nullable=False),
        sa.Column("buyer_id", BigId, sa.ForeignKey("buyers.id"), nullable=False, index=True),
        sa.Column("buyer_alias", sa.String(64), nullable=False, unique=True),
        sa.Column("seller_alias", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("seller_id", "buyer_id"),
    )
    op.create_table(
        "orders",
        _id(),
        sa.Column("ref", sa.String(100), unique=True),
        sa.Column("pair_id", BigId, sa.ForeignKey("pairs.id"), nullable=False, index=True),
        sa.Column("placed_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "messages",
        _id(),
        sa.Column("pair_id", BigId, sa.ForeignKey("pairs.id")),
        sa.Column("direction", sa.String(20), nullable=False),
        sa.Column("session_id", sa.String(40)),
        sa.Column("envelope_from", sa.String(320), nullable=False),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False, index=True),
        sa.Column("verdict", sa.String(20), nullable=False),
        sa.Column("smtp_reply", sa.Text(), nullable=False),
        sa.Column("rule_hits", sa.Text(), nullable=False),
        sa.Column("gateway_message_id", sa.String(255), nullable=False, unique=True),
        sa.Column("original_message_id", sa.String(998)),
        sa.Column("raw_received", sa.LargeBinary()),
        sa.Column("raw_delivered", sa.LargeBinary()),
        sa.Column("size", sa.BigInteger(), nullable=False),
    )
    op.create_index(None, "messages", ["pair_id", "gateway_message_id"])
    op.create_index(None, "messages", ["pair_id", "original_message_id"])
    op.create_table(
        "outbound",
        _id(),
        sa.Column("message_id", BigId, sa.ForeignKey("messages.id"), nullable=False, index=True),
        sa.Column("envelope_from", sa.String(320), nullable=False),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("token", sa.String(64), nullable=False, unique=True),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("queued_at", sa.DateTime(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime()),
        sa.Column("last_error", sa.Text()),
    )
    op.create_index(None, "outbound", ["state", "next_attempt_at"])


def downgrade() -> None:
    for table in (
        "outbound",
        "messages",
        "orders",
        "pairs",
        "seller_mailboxes",
        "buyers",
        "sellers",
    ):
        op.drop_table(table)
