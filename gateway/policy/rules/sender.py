"""Registered senders: a buyer alias takes mail only from the pair's seller, and back."""

from __future__ import annotations

from gateway.core import status
from gateway.core.addresses import AddressError, normalise
from gateway.core.model import Side, Violation
from gateway.policy.rule import MessageContext


def _registered(address: str, ctx: MessageContext) -> bool:
    try:
        return normalise(address) in ctx.conversation.sender.registered
    except AddressError:
        return False


def _party(ctx: MessageContext) -> str:
    return "the seller" if ctx.conversation.sender.side is Side.SELLER else "the buyer"


class EnvelopeSender:
    id = "sender.envelope"
    description = "The envelope sender must be a registered mailbox of the pair's sending party."

    def check(self, ctx: MessageContext) -> list[Violation]:
        if _registered(ctx.envelope_from, ctx):
            return []
        reply = status.SENDER_NOT_ALLOWED.with_text(
            f"Sender is not registered for this conversation: this alias accepts mail only "
            f"from {_party(ctx)}'s registered mailbox"
        )
        return [Violation(self.id, reply, "envelope sender not registered")]


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
        if not _registered(message.from_addresses[0], ctx):
            reply = status.FROM_MISMATCH.with_text(
                f"Header From is not registered for this conversation: this alias accepts "
                f"mail only from {_party(ctx)}'s registered mailbox"
            )
            return [Violation(self.id, reply, "header From not registered")]
        return []
