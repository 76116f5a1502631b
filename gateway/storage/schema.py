"""The schema (SQLAlchemy 2 declarative). Alembic migrations under migrations/ create it.

Each table family has one owner module in gateway.storage that writes it: the archive
(messages, bodies), the archive log (archive_log, archive_log_head, archive_checkpoints,
auditor_access), archive_keys, search (search_head, message_text, message_rules), auditors
(auditors, auditor_sessions), retention (legal_holds, archive_purges), the queue
(outbound), the registry (sellers ... orders, registry_changes), quota (quota_usage),
waits, credentials, dkim_keys, the mailbox sources (imap_messages, imap_sources)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Date,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import DateTime, TypeDecorator

# SQLite autoincrements only INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")
MAX_ROW_ID = 2**63 - 1


def is_row_id(value: int) -> bool:
    """Whether `value` could be an id at all: a larger one makes the drivers raise."""
    return 0 < value <= MAX_ROW_ID


class UTCDateTime(TypeDecorator[datetime]):
    """Stored as naive UTC on every backend, returned timezone-aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class Seller(Base):
    __tablename__ = "sellers"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="active")  # active | suspended
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Buyers may write before any order (pre-purchase questions) only if the seller allows it.
    pre_purchase: Mapped[bool] = mapped_column(default=False)


class Vacation(Base):
    """A period the seller is away: its response times do not count (SPEC, Response time)."""

    __tablename__ = "vacations"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    seller_id: Mapped[int] = mapped_column(BigId, ForeignKey("sellers.id"), index=True)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())


class QuotaUsage(Base):
    """Messages a seller sent to buyers on one UTC day; raised only within its limit."""

    __tablename__ = "quota_usage"
    seller_id: Mapped[int] = mapped_column(BigId, ForeignKey("sellers.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    used: Mapped[int] = mapped_column(Integer, default=0)


class SellerMailbox(Base):
    __tablename__ = "seller_mailboxes"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    seller_id: Mapped[int] = mapped_column(BigId, ForeignKey("sellers.id"), index=True)
    address: Mapped[str] = mapped_column(String(254), unique=True)


class SellerCredential(Base):
    """A submission login of a seller: user name and argon2 hash of its app password."""

    __tablename__ = "seller_credentials"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    seller_id: Mapped[int] = mapped_column(BigId, ForeignKey("sellers.id"), index=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Buyer(Base):
    __tablename__ = "buyers"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    address: Mapped[str] = mapped_column(String(254), unique=True)
    opted_out: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Pair(Base):
    __tablename__ = "pairs"
    __table_args__ = (UniqueConstraint("seller_id", "buyer_id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    seller_id: Mapped[int] = mapped_column(BigId, ForeignKey("sellers.id"))
    buyer_id: Mapped[int] = mapped_column(BigId, ForeignKey("buyers.id"), index=True)
    buyer_alias: Mapped[str] = mapped_column(String(64), unique=True)
    seller_alias: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ref: Mapped[str | None] = mapped_column(String(100), unique=True)
    pair_id: Mapped[int] = mapped_column(BigId, ForeignKey("pairs.id"), index=True)
    placed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Body(Base):
    """A message's bytes, stored once however many archive records name them: keyed by the
    SHA-256 of the bytes, kept zstd-compressed."""

    __tablename__ = "bodies"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)  # hex, of the raw bytes
    size: Mapped[int] = mapped_column(BigInteger)  # raw bytes
    data: Mapped[bytes] = mapped_column(LargeBinary)  # zstd


class Message(Base):
    """The archive: one row per message and recipient, naming its bytes as received and as
    delivered (bodies)."""

    __tablename__ = "messages"
    __table_args__ = (
        Index(None, "pair_id", "gateway_message_id"),
        Index(None, "pair_id", "original_message_id"),
        # What the archive log's checkpointer appends next, oldest first.
        Index(
            "ix_messages_unlogged",
            "id",
            postgresql_where=text("log_seq IS NULL"),
            sqlite_where=text("log_seq IS NULL"),
        ),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    pair_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("pairs.id"))
    direction: Mapped[str] = mapped_column(String(20))
    session_id: Mapped[str | None] = mapped_column(String(40))
    envelope_from: Mapped[str] = mapped_column(String(320))
    recipient: Mapped[str] = mapped_column(String(320))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    verdict: Mapped[str] = mapped_column(String(20))
    smtp_reply: Mapped[str] = mapped_column(Text)
    rule_hits: Mapped[str] = mapped_column(Text, default="")
    gateway_message_id: Mapped[str] = mapped_column(String(255), unique=True)
    original_message_id: Mapped[str | None] = mapped_column(String(998))
    # Indexed: a purge asks whether any other record still names a body.
    received_sha256: Mapped[str | None] = mapped_column(
        String(64), ForeignKey("bodies.sha256"), index=True
    )
    delivered_sha256: Mapped[str | None] = mapped_column(
        String(64), ForeignKey("bodies.sha256"), index=True
    )
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    important: Mapped[bool] = mapped_column(default=False)  # a seller's "[Important]" message
    policy_version: Mapped[str] = mapped_column(String(64), default="")  # content policy hash
    shadow_hits: Mapped[str] = mapped_column(Text, default="")  # rules in shadow mode that hit
    # Its leaf in the archive log; None until the checkpointer has appended it.
    log_seq: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    # Purged after its retention: the bodies and addresses are gone, the row stays as the
    # tombstone of its leaf (archive_log keeps the leaf hash).
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # A bounce's record names the record of the message it reports on.
    about_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("messages.id"), index=True)


class Wait(Base):
    """A buyer message waiting for the seller's answer: opened by the buyer's message, closed
    by the seller's next message in the pair or by "no response needed"."""

    __tablename__ = "waits"
    __table_args__ = (Index(None, "pair_id", "closed_at"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    pair_id: Mapped[int] = mapped_column(BigId, ForeignKey("pairs.id"))
    seller_id: Mapped[int] = mapped_column(BigId, ForeignKey("sellers.id"), index=True)
    message_id: Mapped[int] = mapped_column(BigId, ForeignKey("messages.id"), unique=True)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_by: Mapped[str | None] = mapped_column(String(20))  # reply | no_response_needed


class DkimKey(Base):
    """A signing key of the alias domain; one is active, older ones are kept for the record."""

    __tablename__ = "dkim_keys"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    selector: Mapped[str] = mapped_column(String(63), unique=True)
    private_key: Mapped[str] = mapped_column(Text)  # PEM, PKCS#8
    active: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RegistryChange(Base):
    """A change to who is who (a seller, buyer, pair, order, mailbox, standing): every
    process's directory cache drops what the change touches."""

    __tablename__ = "registry_changes"
    # AUTOINCREMENT: ids never come back once pruned, so "past the last one seen" holds.
    __table_args__ = {"sqlite_autoincrement": True}  # noqa: RUF012 (SQLAlchemy's own form)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    seller_id: Mapped[int | None] = mapped_column(BigInteger)  # None: not about one seller
    buyer_id: Mapped[int | None] = mapped_column(BigInteger)


class LogLeaf(Base):
    """A leaf of the archive's Merkle log (RFC 9162 shape), in the order it was appended:
    `seq` is its index in the tree. `kind` and `ref_id` name the record it stands for."""

    __tablename__ = "archive_log"
    __table_args__ = (UniqueConstraint("kind", "ref_id"),)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(20))  # message
    ref_id: Mapped[int] = mapped_column(BigInteger)
    leaf_hash: Mapped[str] = mapped_column(String(64))  # hex
    appended_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LogHead(Base):
    """The log's one head row: its size and right edge. Whoever appends holds it locked."""

    __tablename__ = "archive_log_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)  # 1
    tree_size: Mapped[int] = mapped_column(BigInteger)
    frontier: Mapped[bytes] = mapped_column(LargeBinary)  # core.merkle.Frontier.to_bytes()


class LegalHold(Base):
    """Records a dispute keeps past their retention: a pair's, a seller's, a buyer's or an
    order's pair's, until released."""

    __tablename__ = "legal_holds"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    scope: Mapped[str] = mapped_column(String(20))  # pair | seller | buyer | order
    value: Mapped[str] = mapped_column(String(320))  # the id, address or order reference
    reason: Mapped[str] = mapped_column(Text)
    placed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    release_reason: Mapped[str | None] = mapped_column(Text)
    log_seq: Mapped[int | None] = mapped_column(BigInteger, unique=True)  # its placing's leaf
    release_log_seq: Mapped[int | None] = mapped_column(BigInteger, unique=True)


class Purge(Base):
    """One batch of records purged after their retention, itself a leaf of the log."""

    __tablename__ = "archive_purges"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    purged_at: Mapped[datetime] = mapped_column(UTCDateTime())
    message_ids: Mapped[str] = mapped_column(Text)  # JSON list, ascending
    log_seq: Mapped[int | None] = mapped_column(BigInteger, unique=True)


class Checkpoint(Base):
    """A signed tree head: the log's size and root at a moment, signed with an archive key."""

    __tablename__ = "archive_checkpoints"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tree_size: Mapped[int] = mapped_column(BigInteger, unique=True)
    root_hash: Mapped[str] = mapped_column(String(64))  # hex
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    key_id: Mapped[str] = mapped_column(String(16))
    signature: Mapped[str] = mapped_column(String(128))  # base64 Ed25519


class ArchiveKey(Base):
    """An Ed25519 key that signs checkpoints; one is active, older ones stay to verify."""

    __tablename__ = "archive_keys"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key_id: Mapped[str] = mapped_column(String(16), unique=True)
    private_key: Mapped[str] = mapped_column(Text)  # PEM, PKCS#8
    public_key: Mapped[str] = mapped_column(String(64))  # base64 of the 32 raw bytes
    active: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SearchHead(Base):
    """How far the search index has read the archive log: the next leaf to index."""

    __tablename__ = "search_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)  # 1
    next_seq: Mapped[int] = mapped_column(BigInteger)


class MessageText(Base):
    """A message's decoded subject, for search results. Its words are indexed beside it:
    in the FTS5 table message_fts on SQLite, in a tsvector column `terms` on PostgreSQL
    (made by the migration; neither is a model)."""

    __tablename__ = "message_text"
    message_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    subject: Mapped[str] = mapped_column(Text)


class MessageRule(Base):
    """A rule that refused a message, one row each: the archive's search by rule."""

    __tablename__ = "message_rules"
    rule_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    message_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)


class Auditor(Base):
    """An account of the auditor console: an auditor reads the archive, an operator also
    places and releases legal holds."""

    __tablename__ = "auditors"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(20))  # auditor | operator
    password_hash: Mapped[str] = mapped_column(Text)  # argon2id
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AuditorSession(Base):
    """A console login: the SHA-256 of its cookie's token, never the token itself."""

    __tablename__ = "auditor_sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    auditor_id: Mapped[int] = mapped_column(BigInteger)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AuditorAccess(Base):
    """One request of an auditor: who, when, what was asked and which records it showed.
    Each is a leaf of the archive log, so nobody can rewrite it unseen."""

    __tablename__ = "auditor_access"
    __table_args__ = (
        Index(
            "ix_auditor_access_unlogged",
            "id",
            postgresql_where=text("log_seq IS NULL"),
            sqlite_where=text("log_seq IS NULL"),
        ),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    auditor: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    action: Mapped[str] = mapped_column(String(40))
    query: Mapped[str] = mapped_column(Text)  # JSON
    records: Mapped[str] = mapped_column(Text)  # JSON list of message ids
    log_seq: Mapped[int | None] = mapped_column(BigInteger, unique=True)


class MailboxMessage(Base):
    """A message taken in from a mailbox (IMAP): its place there, its bytes' SHA-256 and the
    first archive record it made, written in the same transaction as that record, so
    that no message is ever taken in twice."""

    __tablename__ = "imap_messages"
    __table_args__ = (
        UniqueConstraint("source", "uidvalidity", "uid"),
        Index(None, "source", "digest"),
        Index(None, "record_id"),  # a purge forgets its records' places
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source: Mapped[str] = mapped_column(String(40))
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    uid: Mapped[int] = mapped_column(BigInteger)
    digest: Mapped[str] = mapped_column(String(64))
    message_id: Mapped[str | None] = mapped_column(Text)  # the Message-ID field, as written
    record_id: Mapped[int] = mapped_column(BigInteger)
    taken_at: Mapped[datetime] = mapped_column(UTCDateTime())


class MailboxSource(Base):
    """A mailbox source's lease (the one process that polls it) and its last known state."""

    __tablename__ = "imap_sources"
    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(120))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    state: Mapped[str] = mapped_column(String(20))
    detail: Mapped[str] = mapped_column(Text, default="")
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_ok_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class GatewaySecret(Base):
    """A secret the gateway makes for itself on first start (the VERP key), shared by every
    instance on the database."""

    __tablename__ = "gateway_secrets"
    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Suppression(Base):
    """A recipient address that bounced hard: counted, and refused at once while suppressed."""

    __tablename__ = "suppressions"
    address: Mapped[str] = mapped_column(String(320), primary_key=True)
    hard_bounces: Mapped[int] = mapped_column(Integer)
    first_bounce_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_bounce_at: Mapped[datetime] = mapped_column(UTCDateTime())
    suppressed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_status: Mapped[str] = mapped_column(String(20))


class Instance(Base):
    """A gateway process that claims deliveries, with its heartbeat: the claims of one that
    is known dead are given back at once rather than a lease later."""

    __tablename__ = "instances"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started: Mapped[str] = mapped_column(String(32))  # the process's start, as the kernel counts
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime())


def table_of(model: type[Base]) -> Table:
    """The Core table of a model, for hot-path statements that need no ORM machinery."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


class ClientFailure(Base):
    """A client's failure against a key: a failed login (SMTP AUTH, the auditor console) by
    a client address or for a user name, a recipient refused as unknown to a client address;
    the key kept only as a hash. Every process counts the same rows."""

    __tablename__ = "client_failures"
    __table_args__ = (Index(None, "scope", "key", "at"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    scope: Mapped[str] = mapped_column(String(20))  # smtp | console | rcpt
    key: Mapped[str] = mapped_column(String(64))  # sha256 of "client:<ip>" or "user:<name>"
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class Outbound(Base):
    """The delivery queue: one row per message to send."""

    __tablename__ = "outbound"
    __table_args__ = (Index(None, "state", "next_attempt_at"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int] = mapped_column(BigId, ForeignKey("messages.id"), index=True)
    envelope_from: Mapped[str] = mapped_column(String(320))
    recipient: Mapped[str] = mapped_column(String(320))
    token: Mapped[str] = mapped_column(String(64), unique=True)
    state: Mapped[str] = mapped_column(String(20))  # queued | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    claimed_by: Mapped[str | None] = mapped_column(String(64))  # the instance holding the lease
