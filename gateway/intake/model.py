"""What passes between the intake's steps: a message as an adapter hands it over, as read,
as decided for each recipient, and as it is to be committed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from gateway.core.content import EMPTY_CONTENT, ContentFacts
from gateway.core.message import ParsedMessage
from gateway.core.model import (
    ArchiveEntry,
    BounceContext,
    Conversation,
    HardBounce,
    QuotaClaim,
    SellerLogin,
    SenderAuthentication,
    Violation,
)
from gateway.core.status import MALFORMED, Reply

# What an accepted recipient leads to: a pair's alias, or the bounce address of a delivery.
Target = Conversation | BounceContext

UNREADABLE = Violation("message.format", MALFORMED)


@dataclass(frozen=True, slots=True)
class Client:
    """Who handed the message over, and how."""

    listener: str  # "mx", "submission", "submissions"
    session_id: str
    peer: str = ""  # the client's IP address (SPF)
    helo: str = ""
    login: SellerLogin | None = None  # an authenticated seller (submission)


@dataclass(frozen=True, slots=True)
class Recipient:
    address: str  # as the sender wrote it
    target: Target


@dataclass(frozen=True, slots=True)
class MailboxOrigin:
    """Where a message fetched from a mailbox (IMAP) was: committed with its archive
    records, so that it is never taken in twice."""

    source: str
    uidvalidity: int
    uid: int
    digest: str  # SHA-256 of the bytes as fetched
    message_id: str | None
    # Authentication-Results of these servers (authserv-id) count as proof of the sender.
    trusted_authserv_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Arrival:
    """One message as an adapter hands it over: the envelope and the bytes. `refused`:
    recipients refused before the message was read, archived with it (a mailbox's message,
    whose sender no RCPT reply reaches); `origin`: the mailbox it was fetched from."""

    envelope_from: str
    recipients: tuple[Recipient, ...]
    raw: bytes
    client: Client
    refused: tuple[tuple[str, Violation], ...] = ()
    origin: MailboxOrigin | None = None

    @property
    def notifies_refusals(self) -> bool:
        """Whether refusals are told by DSN (no session to answer them in)."""
        return self.origin is not None


@dataclass(frozen=True, slots=True)
class RecipientCheck:
    """What RCPT TO answers, and the target an accepted recipient leads to."""

    reply: Reply
    target: Target | None = None
    violation: Violation | None = None  # why it was refused


@dataclass(frozen=True, slots=True)
class Received:
    """One message as read: its bytes with canonical line ends, parsed once."""

    envelope_from: str
    raw: bytes
    parsed: ParsedMessage | None  # None: the bytes could not be read, for `unreadable`
    received_at: datetime
    session_id: str
    alias_domain: str
    unreadable: Violation = UNREADABLE
    authentication: SenderAuthentication | None = None  # None: not checked (bounces)
    content: ContentFacts = EMPTY_CONTENT  # read only when a content rule runs
    archived_raw: bytes = b""  # as archived: with Authentication-Results when checked


@dataclass(frozen=True, slots=True)
class Outcome:
    """One recipient's fate: its archive entry, and what else it sets off."""

    rcpt: str
    pair_id: int | None
    entry: ArchiveEntry
    notice: ArchiveEntry | None = None  # a DSN to a sender
    failed_delivery: tuple[int, str] | None = None  # a delivery a bounce reports as failed
    quota_claim: QuotaClaim | None = None  # a seller's message counted against its day
    hard_bounce: HardBounce | None = None  # a bounce that counts against an address
    # Where a refusal is told when no session answers it (a mailbox's message): the sending
    # party's address as the gateway knows it; None: not told.
    tell: str | None = None


@dataclass(frozen=True, slots=True)
class Variant:
    """The recipients' outcomes and the notices they set off, as one commit writes them."""

    outcomes: tuple[Outcome, ...]
    notices: tuple[ArchiveEntry, ...] = ()

    @property
    def entries(self) -> list[ArchiveEntry]:
        return [o.entry for o in self.outcomes] + list(self.notices)

    @property
    def accepted(self) -> int:
        return sum(1 for o in self.outcomes if o.entry.accepted)


@dataclass(frozen=True, slots=True)
class Unit:
    """What one message commits: `passing`, or, if the seller's day turns out full at the
    commit (another session or process took the last of it), what `over_quota` builds (only
    then: its DSNs are written for nothing otherwise)."""

    received: Received
    passing: Variant
    claim: QuotaClaim | None = None
    over_quota: Callable[[], Variant] | None = None
    origin: MailboxOrigin | None = None  # a mailbox's message: recorded as taken in


@dataclass(frozen=True, slots=True)
class Committed:
    variant: Variant
    record_ids: list[int]
    outbound_ids: dict[int, int]  # by record id
    quota_used: int | None = None  # the seller's count the commit left (None: no claim)
    # Its deliveries are this process's to make, from memory, until then (None: the queue's).
    leased_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class Receipt:
    """What the adapter tells the client."""

    reply: Reply
    record_ids: tuple[int, ...] = field(default_factory=tuple)
    unreadable: bool = False  # the bytes could not be parsed (archived as refused)
