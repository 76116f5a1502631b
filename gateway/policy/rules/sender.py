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


class HeaderFrom:
    id = "sender.header_from"
    description = "The message has one From address, a registered mailbox of the sending party."

    def check(self, ctx: MessageContext) -> list[Violation]:
        message = ctx.message
        if message.from_count != 1 or len(message.from_addresses) != 1:
            reply = status.FROM_MISMATCH.with_text("Message must have exactly one From address")
            return [Violation(self.id, reply, f"{len(message.from_addresses)} From addresses")]
        if not _registered(message.from_addresses[0], ctx):
            reply = status.FROM_MISMATCH.with_text(
                f"Header From is not registered for this conversation: this alias accepts "
                f"mail only from {_party(ctx)}'s registered mailbox"
            )
            return [Violation(self.id, reply, "header From not registered")]
        return []
