"""What the learned model (gateway.policy.learned) says of the seller's own words, read once
per message for every rule that asks: whether they promote, ask for a review, ask why an
order was cancelled, only thank or only confirm; and, for the reply, which sentence weighs
most towards it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

from gateway.core.content import QUOTE_MARK, ContentFacts, TextBlock
from gateway.policy.learned import SentenceModel, index
from gateway.policy.rule import MessageContext
from gateway.policy.rules.content.base import OWN_WORDS, blocks
from gateway.policy.rules.content.split import sentences_of

_BLOCKS_APART = "\n\n"


def own_blocks(candidates: Iterable[TextBlock]) -> list[TextBlock]:
    """The blocks of the seller's own words the model reads: the subject, and the plain-text
    body (its quoted lines left out), or the HTML's text where there is no plain text. Training
    reads messages through this too, so that it sees what the rules see."""
    chosen = [b for b in candidates if not b.source.startswith("attachment")]
    if any(b.source == "body" for b in chosen):
        chosen = [b for b in chosen if b.source != "html"]
    return chosen


def own_words(chosen: Sequence[TextBlock]) -> str:
    return _BLOCKS_APART.join(b.folded for b in chosen if b.folded.strip())


class LearnedSentences:
    def __init__(self, model: SentenceModel | None) -> None:
        self._model = model
        # Several rules ask about the same message in turn: the last answer is kept.
        self._last: tuple[ContentFacts, list[TextBlock], npt.NDArray[np.float64] | None] | None
        self._last = None

    @property
    def enabled(self) -> bool:
        return self._model is not None

    def _read(
        self, ctx: MessageContext, model: SentenceModel
    ) -> tuple[list[TextBlock], npt.NDArray[np.float64] | None]:
        last = self._last
        if last is not None and last[0] is ctx.content:
            return last[1], last[2]
        chosen = own_blocks(blocks(ctx, OWN_WORDS))
        logits = model.logits(own_words(chosen))
        self._last = (ctx.content, chosen, logits)
        return chosen, logits

    def strongest(self, ctx: MessageContext, category: str) -> tuple[str, str] | None:
        """When the seller's own words, read as one text, are taken to do `category`, and
        so is the sentence that weighs most towards it, read alone: where that sentence
        stands, and the sentence. Both must agree: a whole text of a repeated line, or of
        greetings only, weighs towards something without any sentence doing it."""
        if self._model is None:
            return None
        chosen, logits = self._read(ctx, self._model)
        column = index(category)
        if logits is None or not self._model.takes(logits, column):
            return None
        placed = [
            (block.source, sentence)
            for block in chosen
            for sentence in sentences_of(block.folded)
            if sentence != QUOTE_MARK
        ]
        if not placed:
            return chosen[0].source, chosen[0].folded
        scores = self._model.read([sentence for _, sentence in placed])
        strongest = int(np.argmax(scores.sums[:, column]))
        if not self._model.takes(scores.logits()[strongest], column):
            return None
        return placed[strongest]
