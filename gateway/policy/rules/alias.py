"""RCPT rules: only our aliases are recipients; nothing is relayed anywhere else."""

from __future__ import annotations

from gateway.core import status
from gateway.core.model import Violation
from gateway.policy.rule import RecipientContext


class RelayDenied:
    id = "rcpt.relay"
    description = "Recipients outside the alias domain are never accepted (no relaying)."

    def check(self, ctx: RecipientContext) -> list[Violation]:
        if ctx.mailbox.domain != ctx.alias_domain:
            return [Violation(self.id, status.RELAY_DENIED)]
        return []


class RecipientSuppressed:
    id = "rcpt.suppressed"
    description = (
        "A recipient whose mailbox bounced hard again and again is not written to for a "
        "while ([bounces] suppress_after, suppress_for): the sender learns it at once, not "
        "from a DSN days later."
    )

    def check(self, ctx: RecipientContext) -> list[Violation]:
        conversation = ctx.conversation
        until = conversation.recipient.suppressed_until if conversation else None
        if until is None or ctx.now is None or ctx.now >= until:
            return []
        return [Violation(self.id, status.recipient_suppressed(until))]


class UnknownAlias:
    id = "rcpt.alias"
    description = "The recipient must be an alias of an existing pair."

    def check(self, ctx: RecipientContext) -> list[Violation]:
        if ctx.conversation is None:
            return [Violation(self.id, status.UNKNOWN_ALIAS)]
        return []
