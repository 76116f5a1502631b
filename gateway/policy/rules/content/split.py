"""A folded text cut into sentences, as the sort of only.py and the learned model read it."""

from __future__ import annotations

import re
from collections.abc import Iterator

# Paragraphs are apart by an empty line; within one, hard-wrapped lines are one text again.
_PARAGRAPH_BREAK = re.compile(r"\n[^\S\n]*\n\s*")
# A sentence ends at . ! ? before a space ("$34.99" and "e.g." do not end one), at ! ?
# before kana, a Han ideograph or a Hangul syllable (folding made "！" "!"), and at the
# CJK full stops wherever they stand.
_CJK_TEXT = "\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0003134f"
_SENTENCE_END = re.compile(rf"(?<=[.!?])\s+|(?<=[!?])(?=[{_CJK_TEXT}])|(?<=[。！？])\s*")
_EDGES = " \t-–—*_=~•·,;:"


def sentences_of(folded: str) -> Iterator[str]:
    """The sentences of one folded text, one at a time (a reader may stop early)."""
    for paragraph in _paragraphs(folded):
        joined = " ".join(line.strip() for line in paragraph.splitlines())
        for sentence in _SENTENCE_END.split(joined):
            sentence = sentence.strip(_EDGES)
            if sentence:
                yield sentence


def _paragraphs(text: str) -> Iterator[str]:
    """_PARAGRAPH_BREAK.split(text), one paragraph at a time."""
    begin = 0
    for found in _PARAGRAPH_BREAK.finditer(text):
        yield text[begin : found.start()]
        begin = found.end()
    yield text[begin:]
