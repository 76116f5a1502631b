"""What a transport is: where delivered mail goes (a maildir, or a smarthost over SMTP)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from gateway.storage.queue import ClaimedDelivery


class Outcome(StrEnum):
    DELIVERED = "delivered"
    TRANSIENT = "transient"  # try again later
    PERMANENT = "permanent"  # give up now and tell the sender


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: Outcome
    detail: str = ""  # the remote reply or the error, for the DSN and last_error


class Transport(Protocol):
    async def send(self, delivery: ClaimedDelivery) -> SendResult: ...

    async def close(self) -> None:
        """Release what the transport holds open (idle connections)."""
        ...
