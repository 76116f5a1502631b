"""A received message, parsed once, with the header facts rules and rewrites use."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    raw: bytes
    message: EmailMessage
    from_count: int  # number of From header fields
    from_addresses: tuple[str, ...]  # addr-specs of every From field, as written
    from_ambiguous: bool  # a From field the parser had to guess at (defects)
    message_id: str | None  # "<...>"
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    # Addresses the sender may have revealed about itself (Sender, Reply-To, Return-Path).
    self_addresses: tuple[str, ...]

    @property
    def thread_ids(self) -> tuple[str, ...]:
        """Every Message-ID this message refers to, In-Reply-To first, without repeats."""
        return tuple(dict.fromkeys((*self.in_reply_to, *self.references)))
