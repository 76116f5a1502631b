"""What the learned model (gateway.policy.learned) says of the seller's own words (subject
and body, no quoted lines, no attachments), read once per message for every rule that asks:
whether they promote, ask for a review, ask why an order was cancelled, only thank or only
confirm; and which sentence weighs most towards it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from gateway.core.content import QUOTE_MARK, ContentFacts, TextBlock
from gateway.policy.learned import SentenceModel, SentenceScores, index
from gateway.policy.rule import MessageContext
from gateway.policy.rules.content.base import OWN_WORDS, blocks
from gateway.policy.rules.content.split import sentences_of


@dataclass(frozen=True, slots=True)
class OwnSentences:
    """The distinct sentences of a message's own words: the subject's, then the body's."""

    sentences: tuple[str, ...]
    places: tuple[str, ...]  # where each stands: "subject", "body", "html"


def own_sentences(own_blocks: Iterable[TextBlock]) -> OwnSentences:
    """Training reads messages through this too, so that it sees what the rules see."""
    subject: dict[str, str] = {}
    body: dict[str, str] = {}
    for block in own_blocks:
        target = subject if block.source == "subject" else body
        for sentence in sentences_of(block.folded):
            if sentence != QUOTE_MARK:
                target.setdefault(sentence, block.source)
    body = {s: where for s, where in body.items() if s not in subject}
    placed = [*subject.items(), *body.items()]
    return OwnSentences(tuple(s for s, _ in placed), tuple(where for _, where in placed))


class LearnedSentences:
    def __init__(self, model: SentenceModel | None) -> None:
        self._model = model
        # Several rules ask about the same message in turn: the last answer is kept.
        self._last: tuple[ContentFacts, OwnSentences, SentenceScores] | None = None

    def _read(
        self, ctx: MessageContext, model: SentenceModel
    ) -> tuple[OwnSentences, SentenceScores]:
        last = self._last
        if last is not None and last[0] is ctx.content:
            return last[1], last[2]
        own = own_sentences(blocks(ctx, OWN_WORDS))
        scores = model.read(own.sentences)
        self._last = (ctx.content, own, scores)
        return own, scores

    @property
    def enabled(self) -> bool:
        return self._model is not None

    def strongest(self, ctx: MessageContext, category: str) -> tuple[str, str] | None:
        """When the seller's own words, read as one text, are taken to do `category`: the
        sentence that weighs most towards it (where it stands, and the sentence), for the
        reply to quote."""
        if self._model is None:
            return None
        own, scores = self._read(ctx, self._model)
        column = index(category)
        if not own.sentences or not scores.takes(column):
            return None
        strongest = int(np.argmax(scores.sums[:, column]))
        return own.places[strongest], own.sentences[strongest]
