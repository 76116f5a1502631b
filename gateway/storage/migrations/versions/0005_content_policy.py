"""Content policy: each message's policy version and the hits of rules in shadow mode.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as messages:
        messages.add_column(
            sa.Column("policy_version", sa.String(64), nullable=False, server_default="")
        )
        messages.add_column(sa.Column("shadow_hits", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("messages") as messages:
        messages.drop_column("shadow_hits")
        messages.drop_column("policy_version")
