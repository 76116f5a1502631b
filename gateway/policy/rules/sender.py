"""Registered senders: a buyer alias takes mail only from the pair's seller, and back."""

from __future__ import annotations

from typing import ClassVar

from gateway.core import status
from gateway.core.addresses import AddressError, normalise
from gateway.core.model import Conversation, Side, Violation
from gateway.core.status import Reply
from gateway.policy.domains import aligned
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
        address = message.from_addresses[0]
        if _registered(address, ctx.conversation):
            return []
        folded = address.casefold()
        if any(folded == r.casefold() for r in ctx.conversation.sender.registered):
            # Local parts compare exactly (RFC 5321 2.4). Look-alike letters from other
            # scripts never get this far: FromSyntax refuses a non-ASCII address.
            return [Violation(self.id, status.FROM_CASE_DIFFERS, "header From differs in case")]
        reply = status.from_not_registered(_party(ctx))
        return [Violation(self.id, reply, "header From not registered")]


class SenderAuthenticated:
    id = "sender.authenticated"
    description = (
        "Mail on the MX path proves its From domain: a DKIM signature or an SPF pass whose "
        "domain aligns with it (DMARC relaxed alignment), as [smtp] sender_auth requires. "
        "Submission proves it with AUTH."
    )

    _REPLIES: ClassVar[dict[str, Reply]] = {
        "aligned": status.NOT_AUTHENTICATED,
        "dkim": status.NO_ALIGNED_DKIM,
        "spf": status.NO_ALIGNED_SPF,
    }

    def __init__(self, require: str) -> None:
        self._require = require
        self._methods = ("dkim", "spf") if require == "aligned" else (require,)

    def check(self, ctx: MessageContext) -> list[Violation]:
        auth = ctx.authentication
        addresses = ctx.message.from_addresses
        if self._require == "none" or auth is None or auth.passed("auth") or len(addresses) != 1:
            return []
        from_domain = addresses[0].rpartition("@")[2]
        for method in self._methods:
            if any(aligned(check.domain, from_domain) for check in auth.passed(method)):
                return []
        summary = " ".join(f"{c.method}={c.result}" for c in auth.checks)
        if auth.temporary_error:
            return [Violation(self.id, status.AUTH_CHECK_UNAVAILABLE, summary)]
        return [Violation(self.id, self._REPLIES[self._require], summary)]
