"""client_failures: failed logins and, new, recipients refused as unknown (alias guessing),
counted per client so that every replica slows a guessing client down together.

Expand, not rename: login_failures stays, unread, for replicas of the previous version
that still run during a rolling upgrade (they count their logins there, and only they see
what they count after this runs); its rows are copied, so no lockout in force is
forgotten. A later migration drops it.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "client_failures",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("scope", sa.String(20), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_client_failures_scope_key_at", "client_failures", ["scope", "key", "at"])
    op.create_index("ix_client_failures_at", "client_failures", ["at"])
    op.execute(
        "INSERT INTO client_failures (scope, key, at) SELECT scope, key, at FROM login_failures"
    )


def downgrade() -> None:
    op.drop_table("client_failures")
