"""What a rule is, and the facts it is given. Rules do no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

from gateway.core.addresses import Mailbox
from gateway.core.content import EMPTY_CONTENT, ContentFacts
from gateway.core.message import ParsedMessage
from gateway.core.model import Conversation, SellerLogin, SenderAuthentication, Violation


@dataclass(frozen=True, slots=True)
class RecipientContext:
    """RCPT time: the recipient as written, and what it leads to (looked up by the caller)."""

    mailbox: Mailbox
    alias_domain: str
    conversation: Conversation | None
    envelope_from: str = ""
    login: SellerLogin | None = None  # set on the submission ports
    now: datetime | None = None  # when the recipient was given (None: no time-bound rule)


@dataclass(frozen=True, slots=True)
class MessageContext:
    """DATA time, for one recipient: envelope, parsed message, the pair's facts."""

    envelope_from: str
    message: ParsedMessage
    conversation: Conversation
    received_at: datetime
    # What proves the sender (DKIM/SPF on the MX path, AUTH on submission); None: unchecked.
    authentication: SenderAuthentication | None = None
    # What the message says and carries, read once (pipeline.content) for the content rules.
    content: ContentFacts = EMPTY_CONTENT


CtxT = TypeVar("CtxT", RecipientContext, MessageContext, contravariant=True)


class Rule(Protocol[CtxT]):
    """A stable id, a sentence for people, and a pure check of the facts it is handed."""

    @property
    def id(self) -> str: ...

    @property
    def description(self) -> str: ...

    def check(self, ctx: CtxT) -> list[Violation]: ...
