"""Each distinct message body stored once (bodies, by SHA-256), and the registry's change log.

Archived bytes move from the messages rows into bodies: a message sent to several aliases
is stored once as received, whatever its number of recipients.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

import hashlib
from collections.abc import Sequence

import sqlalchemy as sa
import zstandard
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_BATCH = 500  # rows read and rewritten at a time


def upgrade() -> None:
    op.create_table(
        "bodies",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "registry_changes",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("changed_at", sa.DateTime(), nullable=False, index=True),
        sa.Column("seller_id", sa.BigInteger()),
        sa.Column("buyer_id", sa.BigInteger()),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("messages") as messages:
        messages.add_column(sa.Column("received_sha256", sa.String(64)))
        messages.add_column(sa.Column("delivered_sha256", sa.String(64)))
    _move_bytes_to_bodies()
    with op.batch_alter_table("messages") as messages:
        messages.drop_column("raw_received")
        messages.drop_column("raw_delivered")
        messages.create_foreign_key(
            "fk_messages_received_sha256_bodies", "bodies", ["received_sha256"], ["sha256"]
        )
        messages.create_foreign_key(
            "fk_messages_delivered_sha256_bodies", "bodies", ["delivered_sha256"], ["sha256"]
        )


def _move_bytes_to_bodies() -> None:
    connection = op.get_bind()
    messages = sa.table(
        "messages",
        sa.column("id", sa.BigInteger()),
        sa.column("raw_received", sa.LargeBinary()),
        sa.column("raw_delivered", sa.LargeBinary()),
        sa.column("received_sha256", sa.String()),
        sa.column("delivered_sha256", sa.String()),
    )
    bodies = sa.table(
        "bodies",
        sa.column("sha256", sa.String()),
        sa.column("size", sa.BigInteger()),
        sa.column("data", sa.LargeBinary()),
    )
    known: set[str] = set()
    decompressor = zstandard.ZstdDecompressor()
    last = 0
    while True:
        rows = connection.execute(
            sa.select(messages.c.id, messages.c.raw_received, messages.c.raw_delivered)
            .where(messages.c.id > last)
            .order_by(messages.c.id)
            .limit(_BATCH)
        ).all()
        if not rows:
            return
        new_bodies = []
        keys = []
        for row in rows:
            pair: list[str | None] = []
            for blob in (row.raw_received, row.raw_delivered):
                if blob is None:
                    pair.append(None)
                    continue
                raw = decompressor.decompress(blob)
                key = hashlib.sha256(raw).hexdigest()
                if key not in known:
                    known.add(key)
                    new_bodies.append({"sha256": key, "size": len(raw), "data": blob})
                pair.append(key)
            keys.append({"row_id": row.id, "received": pair[0], "delivered": pair[1]})
        if new_bodies:
            connection.execute(bodies.insert(), new_bodies)
        connection.execute(
            messages.update()
            .where(messages.c.id == sa.bindparam("row_id"))
            .values(
                received_sha256=sa.bindparam("received"),
                delivered_sha256=sa.bindparam("delivered"),
            ),
            keys,
        )
        last = rows[-1].id


def downgrade() -> None:
    with op.batch_alter_table("messages") as messages:
        messages.add_column(sa.Column("raw_received", sa.LargeBinary()))
        messages.add_column(sa.Column("raw_delivered", sa.LargeBinary()))
    connection = op.get_bind()
    for column in ("received", "delivered"):
        connection.execute(
            sa.text(
                f"UPDATE messages SET raw_{column} = "  # noqa: S608 (two fixed column names)
                f"(SELECT data FROM bodies WHERE bodies.sha256 = messages.{column}_sha256)"
            )
        )
    with op.batch_alter_table("messages") as messages:
        messages.drop_constraint("fk_messages_received_sha256_bodies", type_="foreignkey")
        messages.drop_constraint("fk_messages_delivered_sha256_bodies", type_="foreignkey")
        messages.drop_column("received_sha256")
        messages.drop_column("delivered_sha256")
    op.drop_table("registry_changes")
    op.drop_table("bodies")
