"""Marketplace rules: suspension and pre-purchase setting, vacations, daily quota usage,
[Important] messages, and waits for the seller's answer.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("sellers") as sellers:
        sellers.add_column(
            sa.Column("pre_purchase", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("messages") as messages:
        messages.add_column(
            sa.Column("important", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_table(
        "vacations",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("seller_id", BigId, sa.ForeignKey("sellers.id"), nullable=False, index=True),
        sa.Column("starts_at", sa.DateTime(), nullable=False),
        sa.Column("ends_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "quota_usage",
        sa.Column("seller_id", BigId, sa.ForeignKey("sellers.id"), primary_key=True),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("used", sa.Integer(), nullable=False),
    )
    op.create_table(
        "waits",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("pair_id", BigId, sa.ForeignKey("pairs.id"), nullable=False),
        sa.Column("seller_id", BigId, sa.ForeignKey("sellers.id"), nullable=False, index=True),
        sa.Column("message_id", BigId, sa.ForeignKey("messages.id"), nullable=False, unique=True),
        sa.Column("opened_at", sa.DateTime(), nullable=False, index=True),
        sa.Column("closed_at", sa.DateTime(), nullable=True),
        sa.Column("closed_by", sa.String(20), nullable=True),
    )
    op.create_index("ix_waits_pair_id_closed_at", "waits", ["pair_id", "closed_at"])


def downgrade() -> None:
    op.drop_table("waits")
    op.drop_table("quota_usage")
    op.drop_table("vacations")
    with op.batch_alter_table("messages") as messages:
        messages.drop_column("important")
    with op.batch_alter_table("sellers") as sellers:
        sellers.drop_column("pre_purchase")
