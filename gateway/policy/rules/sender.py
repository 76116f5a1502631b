"""Registered senders: a buyer alias takes mail only from the pair's seller, and back."""

from __future__ import annotations

from gateway.core import status
from gateway.core.addresses import AddressError, normalise
from gateway.core.model import Conversation, Side, Violation
from gateway.policy.rule import MessageContext, RecipientContext


def _registered(address: str, conversation: Conversation) -> bool:
    try:
        return normalise(address) in conversation.sender.registered
    except AddressError:
        return False


def _party(ctx: MessageContext) -> str:
    return "the seller" if ctx.conversation.sender.side is Side.SELLER else "the buyer"


class EnvelopeSender:
    id = "sender.envelope"
    description = (
        "The envelope sender must be a registered mailbox of the pair's sending party. To "
        "anyone else the alias answers exactly as one that does not exist: RCPT replies "
        "reveal nothing about which aliases are real."
    )

    def check(self, ctx: RecipientContext) -> list[Violation]:
        if ctx.conversation is None or _registered(ctx.envelope_from, ctx.conversation):
            return []
        return [Violation(self.id, status.UNKNOWN_ALIAS, "envelope sender not registered")]


class FromSyntax:
    id = "sender.from_syntax"
    description = (
        "One From field with one address that every parser reads the same way: two From "
        "fields, several addresses or an ambiguous form could show the recipient one sender "
        "while the gateway checked another."
    )

    def check(self, ctx: MessageContext) -> list[Violation]:
        message = ctx.message
        if message.from_count != 1:
            detail = f"{message.from_count} From fields"
        elif len(message.from_addresses) != 1:
            detail = f"{len(message.from_addresses)} addresses in From"
        elif message.from_ambiguous:
            detail = "From cannot be read unambiguously"
        else:
            return []
        return [Violation(self.id, status.FROM_NOT_ONE_MAILBOX, detail)]


class HeaderFrom:
    id = "sender.header_from"
    description = "The From address is a registered mailbox of the sending party."

    def check(self, ctx: MessageContext) -> list[Violation]:
        message = ctx.message
        if len(message.from_addresses) != 1:
            return []  # FromSyntax has said it
        if not _registered(message.from_addresses[0], ctx.conversation):
            reply = status.FROM_MISMATCH.with_text(
                f"Header From is not registered for this conversation: this alias accepts "
                f"mail only from {_party(ctx)}'s registered mailbox"
            )
            return [Violation(self.id, reply, "header From not registered")]
        return []
