"""The interfaces the accepting and delivering code depends on; db/ implements them.

They are synchronous: storage runs in worker threads, off the event loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from gateway.core.model import (
    ArchiveEntry,
    BounceContext,
    Conversation,
    IntakeBatch,
    QuotaStatus,
    StoredCredential,
    ThreadEntry,
)


class Directory(Protocol):
    """Who is who: aliases, pairs, registered mailboxes, earlier messages of a pair."""

    def find_alias(self, token: str) -> Conversation | None:
        """The pair behind an alias, seen from a message sent to it (no thread yet)."""
        ...

    def thread(self, pair_id: int, references: Sequence[str]) -> tuple[ThreadEntry, ...]:
        """The pair's earlier messages among `references` (Message-IDs of either side)."""
        ...

    def find_bounce(self, token: str) -> BounceContext | None:
        """The delivery whose bounce address carries `token`."""
        ...

    def quota(self, seller_id: int, now: datetime, window_days: int) -> QuotaStatus:
        """The seller's orders in the trailing window and its messages to buyers today."""
        ...


class Logins(Protocol):
    """Submission credentials, by user name; revoked ones are not found."""

    def find(self, username: str) -> StoredCredential | None: ...


class Intake(Protocol):
    """The commit before 250: archive records and queue rows in one transaction."""

    def commit(self, batch: IntakeBatch) -> list[int]: ...


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    outbound_id: int
    message_id: int
    envelope_from: str
    recipient: str
    token: str
    content: bytes
    attempts: int  # including the one about to be made
    queued_at: datetime
    is_notice: bool


@dataclass(frozen=True, slots=True)
class Settlement:
    """What became of one claimed delivery, to be written back to its queue row."""

    outbound_id: int
    state: str  # "delivered" | "queued" (to be retried at `when`) | "failed"
    when: datetime  # finished at, or the next attempt
    error: str | None = None
    notice: ArchiveEntry | None = None  # the DSN a failure sends, queued in the same commit


class DeliveryQueue(Protocol):
    def claim(self, limit: int, now: datetime, lease_seconds: float) -> list[ClaimedDelivery]:
        """Take up to `limit` due rows; they stay invisible to others for the lease."""
        ...

    def settle(self, settlements: Sequence[Settlement]) -> None:
        """Record outcomes (and the DSNs of failures) in one transaction."""
        ...

    def bounce_context(self, outbound_id: int) -> BounceContext:
        """The claimed delivery as its sender knew it, for the DSN."""
        ...


class Outcome(StrEnum):
    DELIVERED = "delivered"
    TRANSIENT = "transient"  # try again later
    PERMANENT = "permanent"  # give up now and tell the sender


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: Outcome
    detail: str = ""  # the remote reply or the error, for the DSN and last_error


class Transport(Protocol):
    """Where delivered mail goes: a maildir, or a smarthost over SMTP."""

    async def send(self, delivery: ClaimedDelivery) -> SendResult: ...

    async def close(self) -> None:
        """Release what the transport holds open (idle connections)."""
        ...
