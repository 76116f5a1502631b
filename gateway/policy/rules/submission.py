"""The submission ports: an authenticated seller writes only to its own buyers."""

from __future__ import annotations

from gateway.core import status
from gateway.core.model import Side, Violation
from gateway.policy.rule import RecipientContext


class OwnBuyerAlias:
    id = "rcpt.own_buyer"
    description = (
        "A seller authenticated on a submission port may write only to buyer aliases of its "
        "own pairs. Every other address of the alias domain, real or not, gets the same "
        "answer, so replies reveal nothing about other sellers' aliases."
    )

    def check(self, ctx: RecipientContext) -> list[Violation]:
        login, conversation = ctx.login, ctx.conversation
        if login is None:
            return []
        if (
            conversation is None
            or conversation.seller_id != login.seller_id
            or conversation.sender.side is not Side.SELLER
        ):
            return [Violation(self.id, status.NOT_YOUR_BUYER)]
        return []
