"""Rules that recognise what a seller says by the phrases of its lexicons, in every
language loaded, and by what the learned model takes a sentence to do: promotion, requests
for reviews, asking why an order was cancelled."""

from __future__ import annotations

import re

from gateway.core.model import Violation
from gateway.policy.rule import MessageContext
from gateway.policy.rules.content.base import OWN_WORDS, folded_texts, hit
from gateway.policy.rules.content.sentences import LearnedSentences
from gateway.policy.scan import TextScan, search


class PhraseRule:
    """A seller's own words (subject and body, not quoted lines) matching a phrase list,
    searched where the scan says a phrase of the `category` may start; failing that, the
    learned model reading them as one text (the reply quotes the sentence that weighed
    most)."""

    id = ""
    description = ""
    category = ""  # its lexicon category

    def __init__(
        self, phrases: re.Pattern[str] | None, scan: TextScan, learned: LearnedSentences
    ) -> None:
        self._phrases = phrases
        self._scan = scan
        self._learned = learned

    def check(self, ctx: MessageContext) -> list[Violation]:
        if self._phrases is not None:
            for where, text in folded_texts(ctx, OWN_WORDS):
                found = search(self._phrases, text, self._scan.found(text).at(self.category))
                if found:
                    return [hit(self.id, found.group(0), where)]
        sentence = self._learned.strongest(ctx, self.category)
        if sentence is not None:
            where, text = sentence
            return [hit(self.id, text, where)]
        return []


class Marketing(PhraseRule):
    id = "content.marketing"
    category = "marketing"
    description = "no marketing or promotion of own, other or third-party products"


class FeedbackRequest(PhraseRule):
    id = "content.feedback_request"
    category = "feedback_request"
    description = "no requests for feedback or reviews"


class CancelReason(PhraseRule):
    id = "content.cancel_reason"
    category = "cancel_reason"
    description = "no asking the buyer why an order was cancelled"
