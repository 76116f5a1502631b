"""The archive's search index (its full text, its rule hits, how far the log is indexed),
auditor accounts and sessions, the auditors' access log, and the indexes the purge and
the checkpointer need.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    head = op.create_table(
        "search_head",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("next_seq", sa.BigInteger(), nullable=False),
    )
    op.bulk_insert(head, [{"id": 1, "next_seq": 0}])
    op.create_table(
        "message_text",
        sa.Column("message_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("subject", sa.Text(), nullable=False),
    )
    # The terms: an FTS5 table beside it on SQLite (rowid = message id), a tsvector column
    # with a GIN index on PostgreSQL. Both hold the same words, made by core.terms.
    if op.get_bind().dialect.name == "postgresql":
        op.add_column("message_text", sa.Column("terms", sa.dialects.postgresql.TSVECTOR()))
        op.create_index("ix_message_text_terms", "message_text", ["terms"], postgresql_using="gin")
    else:
        op.execute(
            "CREATE VIRTUAL TABLE message_fts USING fts5("
            "terms, tokenize = 'unicode61 remove_diacritics 0')"
        )
    op.create_table(
        "message_rules",
        sa.Column("rule_id", sa.String(64), primary_key=True),
        sa.Column("message_id", sa.BigInteger(), primary_key=True),
    )
    op.create_table(
        "auditors",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("disabled_at", sa.DateTime()),
        sa.UniqueConstraint("name", name="uq_auditors_name"),
    )
    op.create_table(
        "auditor_sessions",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("auditor_id", sa.BigInteger(), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "auditor_access",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("auditor", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("query", sa.Text(), nullable=False),
        sa.Column("records", sa.Text(), nullable=False),
        sa.Column("log_seq", sa.BigInteger()),
        sa.UniqueConstraint("log_seq", name="uq_auditor_access_log_seq"),
    )
    op.create_index("ix_auditor_access_at", "auditor_access", ["at"])
    # A purge asks whether any other record still names a body.
    for column in ("received_sha256", "delivered_sha256"):
        op.create_index(f"ix_messages_{column}", "messages", [column])
    # What the checkpointer appends next, oldest first: PostgreSQL would otherwise sort every
    # record without a leaf for each batch.
    for table in ("messages", "auditor_access"):
        unlogged = sa.text("log_seq IS NULL")
        op.create_index(
            f"ix_{table}_unlogged", table, ["id"], postgresql_where=unlogged, sqlite_where=unlogged
        )


def downgrade() -> None:
    for table in ("messages", "auditor_access"):
        op.drop_index(f"ix_{table}_unlogged", table)
    for column in ("received_sha256", "delivered_sha256"):
        op.drop_index(f"ix_messages_{column}", "messages")
    for table in ("auditor_access", "auditor_sessions", "auditors", "message_rules"):
        op.drop_table(table)
    if op.get_bind().dialect.name != "postgresql":
        op.execute("DROP TABLE message_fts")
    op.drop_table("message_text")
    op.drop_table("search_head")
