"""Everything the content rules' scan looks for, as Hyperscan expressions: the lexicon
categories' phrases and patterns, the tokens and runs the contact finders read, the steps
of unmasking, and the guards. Compiled once per policy version."""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache

import hyperscan

from gateway.policy.config import Lexicon
from gateway.policy.phrases import bounded
from gateway.policy.prefilter import (
    NOT_WORD_FIRST,
    NOT_WORD_LAST,
    rewrite,
    spaced,
)
from gateway.policy.rules.content.contacts import EMAIL_KEY, LINK_KEY, PHONE_KEY
from gateway.policy.rules.content.numerals import KEY as NUMERALS_KEY
from gateway.policy.rules.content.numerals import TRIGGER as NUMERALS_TRIGGER
from gateway.policy.rules.content.shapes import EMAIL_TOKEN, LINK_TOKEN, PHONE_RUN
from gateway.policy.rules.content.spelled import Step
from gateway.policy.scan import ONCE, Expression, ScanDatabase, guards

# The categories searched in texts and sentences, where a match may start (the reference
# words before an order number are looked for only in the few characters before one).
SCANNED = (
    "marketing",
    "feedback_request",
    "cancel_reason",
    "social",
    "thanks",
    "confirmation",
    "courtesy",
)
_OPENING_WORDS = 3  # of a phrase, in its opening
_SHORT = 5  # letters of an opening that needs its word boundaries scanned for
_PATTERN = hyperscan.HS_FLAG_PREFILTER  # Hyperscan may widen it further where it must


@lru_cache(maxsize=4)  # the policy in force and one a reload is building, with room to spare
def database(lexicon: Lexicon, steps: tuple[Step, ...]) -> ScanDatabase:
    """The scan of one policy version: its lexicons and the unmask steps its settings
    make. Compiling takes a few seconds for the shipped lexicons."""
    expressions: list[Expression] = []
    anywhere: set[str] = set()
    for category in SCANNED:
        for expression in _category(lexicon, category):
            if expression is None:
                anywhere.add(category)
            else:
                expressions.append(expression)
    sources = [
        (EMAIL_KEY, EMAIL_TOKEN, 0, 0),
        (LINK_KEY, LINK_TOKEN, 0, 0),
        (PHONE_KEY, PHONE_RUN, 0, 1),
        (NUMERALS_KEY, NUMERALS_TRIGGER.pattern, 0, 0),  # numbers in words, CJK digits
        *((step.key, step.scanned, 0, step.shift) for step in steps),
    ]
    for key, pattern, flags, shift in sources:
        # The steps only ask whether a text may match: lookarounds may be read as text.
        written = rewrite(pattern, backwards=True, behind=flags == ONCE, ahead=flags == ONCE)
        if written is None:
            anywhere.add(key)
        else:
            expressions.extend(Expression(key, w, flags | _PATTERN, shift) for w in written)
    return ScanDatabase([*expressions, *guards()], anywhere)


def _category(lexicon: Lexicon, category: str) -> Iterator[Expression | None]:
    """Where a category's matches may start: the opening of each phrase (its first
    words), and the opening of each pattern. None: a pattern that may match anywhere."""
    words = lexicon.words(category)
    for phrase in words.phrases:
        yield _opening(category, phrase)
    for pattern in words.patterns:
        written = rewrite(pattern, backwards=True, ahead=True, cut=True)
        if written is None:
            yield None
            continue
        yield from (Expression(category, w, _PATTERN) for w in written)


def _opening(category: str, phrase: tuple[str, ...]) -> Expression:
    """A phrase's first words, as the phrase pattern reads them: after a character
    that is no word character where its first letter needs a word boundary (that character
    is where the match is found, one before the phrase), and before white space if more
    words follow, or a character that is no word character where its last letter needs a
    boundary."""
    words = phrase[:_OPENING_WORDS]
    short = sum(map(len, words)) <= _SHORT  # inside longer words too often to go unbounded
    before = NOT_WORD_FIRST if short and bounded(words[0][0]) else ""
    after = NOT_WORD_LAST if short and bounded(words[-1][-1]) else ""
    if len(phrase) > _OPENING_WORDS:
        after = spaced(("", ""))
    written = after + spaced(words, backwards=True) + before
    return Expression(category, written, shift=1 if before else 0)
