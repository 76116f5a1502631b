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


class UnknownAlias:
    id = "rcpt.alias"
    description = "The recipient must be an alias of an existing pair."

    def check(self, ctx: RecipientContext) -> list[Violation]:
        if ctx.conversation is None:
            return [Violation(self.id, status.UNKNOWN_ALIAS)]
        return []
