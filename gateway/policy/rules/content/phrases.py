"""Rules that recognise what a seller says by the phrases of its lexicons, in every
language loaded: promotion, requests for reviews, asking why an order was cancelled."""

from __future__ import annotations

import re

from gateway.core.model import Violation
from gateway.policy.rule import MessageContext
from gateway.policy.rules.content.base import OWN_WORDS, folded_texts, hit


class PhraseRule:
    """A seller's own words (subject and body, not quoted lines) matching a phrase list."""

    id = ""
    description = ""

    def __init__(self, phrases: re.Pattern[str] | None) -> None:
        self._phrases = phrases

    def check(self, ctx: MessageContext) -> list[Violation]:
        if self._phrases is None:
            return []
        for where, text in folded_texts(ctx, OWN_WORDS):
            found = self._phrases.search(text)
            if found:
                return [hit(self.id, found.group(0), where)]
        return []


class Marketing(PhraseRule):
    id = "content.marketing"
    description = "no marketing or promotion of own, other or third-party products"


class FeedbackRequest(PhraseRule):
    id = "content.feedback_request"
    description = "no requests for feedback or reviews"


class CancelReason(PhraseRule):
    id = "content.cancel_reason"
    description = "no asking the buyer why an order was cancelled"
