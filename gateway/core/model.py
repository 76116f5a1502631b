"""The facts the gateway reasons about, as plain immutable data."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum

from gateway.core.status import Reply


class Side(StrEnum):
    SELLER = "seller"
    BUYER = "buyer"

    @property
    def other(self) -> Side:
        return Side.BUYER if self is Side.SELLER else Side.SELLER


class Direction(StrEnum):
    SELLER_TO_BUYER = "seller_to_buyer"
    BUYER_TO_SELLER = "buyer_to_seller"
    NOTICE = "notice"  # written by the gateway itself: a DSN to a party
    BOUNCE = "bounce"  # a DSN from the recipient's side about a message the gateway sent
    # Reached no pair: an unknown alias, or a sender who is not the pair's party. SMTP
    # refuses these at RCPT; a message fetched from a mailbox is archived as refused.
    UNROUTED = "unrouted"

    @staticmethod
    def from_sender(side: Side) -> Direction:
        return Direction.SELLER_TO_BUYER if side is Side.SELLER else Direction.BUYER_TO_SELLER


PARTY_DIRECTIONS = (Direction.SELLER_TO_BUYER, Direction.BUYER_TO_SELLER)


@dataclass(frozen=True, slots=True)
class BounceContext:
    """A delivery the gateway made, as its sender knew it: all a DSN about it may say."""

    outbound_id: int
    record_id: int  # the archive record of the message delivered
    state: str
    pair_id: int | None
    original_sender: str  # the sender's real address, where a DSN goes ("" for a notice)
    alias_written_to: str
    delivered_to: str  # the recipient's real address: never named to the sender
    original_headers: bytes
    received_at: datetime


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A DKIM key of the alias domain: its selector and its private key (PEM)."""

    selector: str
    private_key_pem: str


@dataclass(frozen=True, slots=True)
class Party:
    side: Side
    alias: str  # full alias address on the alias domain
    display_name: str
    registered: tuple[str, ...]  # the real mailboxes this party may send from
    delivery_address: str  # the real mailbox mail for this party goes to
    # Hard bounces suppressed the delivery address until then (None: it takes mail).
    suppressed_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class ThreadEntry:
    """One earlier message of a pair: its gateway Message-ID and its sender's own."""

    gateway_id: str
    original_id: str | None
    sender_side: Side
    sent_at: datetime | None = None  # when the gateway received it


@dataclass(frozen=True, slots=True)
class PairStanding:
    """What the marketplace rules need to know about a pair, looked up with its alias."""

    latest_order_at: datetime | None = None  # None: no order yet (pre-purchase)
    seller_suspended: bool = False
    pre_purchase_allowed: bool = False
    buyer_opted_out: bool = False


@dataclass(frozen=True, slots=True)
class QuotaStatus:
    """A seller's day so far: orders in the trailing window, messages sent to buyers today."""

    orders_in_window: int
    used_today: int


@dataclass(frozen=True, slots=True)
class Conversation:
    """A pair seen from one message: who sends, who receives, what was said before."""

    pair_id: int
    seller_id: int
    sender: Party
    recipient: Party
    thread: tuple[ThreadEntry, ...] = ()
    standing: PairStanding = PairStanding()
    quota: QuotaStatus | None = None  # looked up at DATA for a seller's message

    @property
    def direction(self) -> Direction:
        return Direction.from_sender(self.sender.side)


@dataclass(frozen=True, slots=True)
class SellerLogin:
    """A seller authenticated on a submission port: what it may send as, and to whom."""

    seller_id: int
    username: str
    mailboxes: tuple[str, ...]  # registered mailboxes: the only senders it may use


@dataclass(frozen=True, slots=True)
class StoredCredential:
    login: SellerLogin
    password_hash: str


@dataclass(frozen=True, slots=True)
class AuthCheck:
    """One sender authentication result, as RFC 8601 names them."""

    method: str  # "dkim" | "spf" | "auth" (SMTP AUTH on a submission port)
    result: str  # pass | fail | softfail | neutral | none | temperror | permerror | policy
    domain: str = ""  # DKIM d=, the SPF-checked domain; "" for auth
    selector: str = ""  # DKIM s=
    identity: str = ""  # SPF: the checked MAIL FROM (or HELO); auth: the user name


@dataclass(frozen=True, slots=True)
class SenderAuthentication:
    checks: tuple[AuthCheck, ...]

    def passed(self, method: str) -> list[AuthCheck]:
        return [c for c in self.checks if c.method == method and c.result == "pass"]

    @property
    def temporary_error(self) -> bool:
        return any(c.result == "temperror" for c in self.checks)


@dataclass(frozen=True, slots=True)
class Violation:
    rule_id: str
    reply: Reply
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Delivery:
    """One outbound queue row to create."""

    envelope_from: str  # "" for the null sender of a DSN
    recipient: str
    token: str  # unique per delivery: names its bounce address and its maildir file


@dataclass(frozen=True, slots=True)
class ArchiveEntry:
    """One archived message and, if it is to be sent, its delivery; committed together."""

    direction: Direction
    pair_id: int | None
    envelope_from: str
    recipient: str  # the address as the sender wrote it (an alias), or the notice's target
    received_at: datetime
    raw_received: bytes | None
    raw_delivered: bytes | None
    gateway_message_id: str
    original_message_id: str | None
    reply: Reply
    violations: tuple[Violation, ...] = ()
    delivery: Delivery | None = None
    session_id: str | None = None
    important: bool = False  # a seller's message marked "[Important]" (counted for review)
    policy_version: str = ""  # the content policy's hash when it was judged
    shadowed: tuple[Violation, ...] = ()  # hits of rules in shadow mode: recorded, not blocking
    about_id: int | None = None  # a bounce's or a DSN's: the record of the message it reports on

    @property
    def accepted(self) -> bool:
        return self.delivery is not None or self.direction in (Direction.NOTICE, Direction.BOUNCE)


@dataclass(frozen=True, slots=True)
class QueueLoad:
    """How much the delivery queue holds, for readiness and the metrics."""

    waiting: int  # deliveries still to be made, held by a lease or not
    due: int  # of them, due now and held by no lease
    oldest_due_age: float  # seconds the longest-waiting due one has waited (0 if none)


@dataclass(frozen=True, slots=True)
class ArchiveLoad:
    """Where the archive's log stands, for the metrics."""

    log_size: int  # records in the log
    unlogged: int  # committed records waiting for their place in it
    checkpoint_age: float | None  # seconds since the last signed checkpoint (None: none yet)


@dataclass(frozen=True, slots=True)
class HardBounce:
    """A delivery that failed because its address cannot take mail: counted against it."""

    address: str
    status: str
    at: datetime
    pair_id: int | None


@dataclass(frozen=True, slots=True)
class SuppressionRules:
    """`after` hard bounces within `window` suppress an address for `pause`."""

    after: int
    window: timedelta
    pause: timedelta


@dataclass(frozen=True, slots=True)
class QuotaClaim:
    """Messages to count against a seller's day; the commit fails if they would pass `limit`."""

    seller_id: int
    day: date
    count: int
    limit: int


@dataclass(frozen=True, slots=True)
class IntakeBatch:
    """Everything one DATA command produces; stored in a single transaction before 250."""

    entries: tuple[ArchiveEntry, ...] = field(default_factory=tuple)
    # Deliveries that a bounce in this batch reports as failed after all: (outbound id, why).
    failed_deliveries: tuple[tuple[int, str], ...] = ()
    quota_claims: tuple[QuotaClaim, ...] = ()


class QuotaExceeded(Exception):
    """A commit found these sellers' daily limits reached (another session got there first)."""

    def __init__(self, seller_ids: set[int]) -> None:
        super().__init__(f"daily quota reached for sellers {sorted(seller_ids)}")
        self.seller_ids = seller_ids
