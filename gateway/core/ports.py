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
    AliasTarget,
    ArchiveEntry,
    BounceContext,
    Conversation,
    IntakeBatch,
)


class Directory(Protocol):
    """Who is who: aliases, pairs, registered mailboxes, earlier messages of a pair."""

    def find_alias(self, token: str) -> AliasTarget | None: ...

    def conversation(self, target: AliasTarget, references: Sequence[str]) -> Conversation: ...

    def find_bounce(self, token: str) -> BounceContext | None:
        """The delivery whose bounce address carries `token`."""
        ...


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


class DeliveryQueue(Protocol):
    def claim(self, limit: int, now: datetime, lease_seconds: float) -> list[ClaimedDelivery]: ...

    def delivered(self, outbound_id: int, now: datetime) -> None: ...

    def retry_at(self, outbound_id: int, when: datetime, error: str) -> None: ...

    def failed(
        self, outbound_id: int, now: datetime, error: str, notice: ArchiveEntry | None
    ) -> None:
        """Mark a delivery failed and, in the same transaction, queue the DSN to its sender."""
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
