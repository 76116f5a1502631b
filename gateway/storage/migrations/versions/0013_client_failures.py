"""login_failures becomes client_failures: refused recipients (alias guessing) are counted
beside failed logins, so that every replica slows a guessing client down together.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    _rename("login_failures", "client_failures")


def downgrade() -> None:
    op.execute("DELETE FROM client_failures WHERE scope = 'rcpt'")
    _rename("client_failures", "login_failures")


def _rename(old: str, new: str) -> None:
    # SQLite cannot rename an index: each is made again under the table's new name.
    op.drop_index(f"ix_{old}_scope_key_at", old)
    op.drop_index(f"ix_{old}_at", old)
    op.rename_table(old, new)
    op.create_index(f"ix_{new}_scope_key_at", new, ["scope", "key", "at"])
    op.create_index(f"ix_{new}_at", new, ["at"])
