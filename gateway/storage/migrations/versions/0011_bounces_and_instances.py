"""Bounces and crashes: the gateway's own secrets (the VERP key), addresses suppressed after
hard bounces, the record a bounce is about, and the processes that claim deliveries.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "gateway_secrets",
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("value", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "suppressions",
        sa.Column("address", sa.String(320), primary_key=True),
        sa.Column("hard_bounces", sa.Integer(), nullable=False),
        sa.Column("first_bounce_at", sa.DateTime(), nullable=False),
        sa.Column("last_bounce_at", sa.DateTime(), nullable=False),
        sa.Column("suppressed_until", sa.DateTime()),
        sa.Column("last_status", sa.String(20), nullable=False),
    )
    op.create_table(
        "instances",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started", sa.String(32), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=False),
    )
    with op.batch_alter_table("outbound") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(64)))
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("about_id", BigId))
        batch.create_foreign_key("fk_messages_about_id_messages", "messages", ["about_id"], ["id"])
        batch.create_index("ix_messages_about_id", ["about_id"])


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_index("ix_messages_about_id")
        batch.drop_constraint("fk_messages_about_id_messages", type_="foreignkey")
        batch.drop_column("about_id")
    with op.batch_alter_table("outbound") as batch:
        batch.drop_column("claimed_by")
    op.drop_table("instances")
    op.drop_table("suppressions")
    op.drop_table("gateway_secrets")
