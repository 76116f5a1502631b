"""The words of the archive's full-text index, the same on SQLite and PostgreSQL.

Text is folded (core.text.fold) and cut into words. Chinese and Japanese are written
without spaces, so a run of their characters is indexed as its overlapping pairs of
characters: a two-character word inside a sentence is one of the sentence's pairs, and a
longer one is a phrase of pairs. Both stores then only split on spaces and compare words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.core.text import fold, is_cjk

MAX_TEXT = 200_000  # characters of one message indexed; its words past that are not
MAX_WORD = 100  # longer "words" are encoded blobs, not words anyone searches for
_WORD = re.compile(r"[^\W_]+")
_SCRIPT_RUNS = re.compile(r"[\u2e80-\U0010ffff]+|[^\u2e80-\U0010ffff]+")


def _split(word: str) -> list[tuple[bool, str]]:
    """A word's runs of CJK and of other characters, in order, each marked CJK or not."""
    if word.isascii():
        return [(False, word)]
    return [(is_cjk(run[0]), run) for run in _SCRIPT_RUNS.findall(word)]


def _pairs(run: str) -> list[str]:
    return [run] if len(run) == 1 else [run[i : i + 2] for i in range(len(run) - 1)]


def index_terms(text: str) -> str:
    """The words of `text` to index, separated by spaces."""
    terms: list[str] = []
    for word in _WORD.findall(fold(text[:MAX_TEXT])):
        for cjk, run in _split(word):
            if cjk:
                terms.extend(_pairs(run))
            elif len(run) <= MAX_WORD:
                terms.append(run)
    return " ".join(terms)


@dataclass(frozen=True, slots=True)
class Phrase:
    """Words that must stand next to each other in this order. `prefix`: the last one may
    be the start of a longer word (Russian and German inflect: "заказ" finds "заказа")."""

    words: tuple[str, ...]
    prefix: bool


def query_phrases(text: str) -> list[Phrase]:
    """What a search for `text` asks for: every phrase must be found in the message."""
    phrases: list[Phrase] = []
    for word in _WORD.findall(fold(text)):
        for cjk, run in _split(word):
            if cjk:
                phrases.append(Phrase(tuple(_pairs(run)), prefix=len(run) == 1))
            else:
                phrases.append(Phrase((run,), prefix=True))
    return phrases
