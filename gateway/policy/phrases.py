"""Phrase lists compiled to one regular expression shaped as a trie: at each position of
the text only the phrases that share the characters read so far are tried, so the cost of
a search grows with the text, not with the number of phrases in every language. Patterns
that open with the same word-boundary test share it, so the others are tried only where a
word starts."""

from __future__ import annotations

import re
from collections.abc import Iterable

from gateway.core.text import fold, is_cjk

_WORD_GAP = " "  # whitespace between the words of a phrase; matches any run of it
_END = ""  # marks the end of a phrase in the trie

Trie = dict[str, "Trie"]


def bounded(char: str) -> bool:
    """Scripts written with spaces need a word boundary there; CJK does not."""
    return char.isalnum() and not is_cjk(char)


def _trie_pattern(node: Trie) -> str:
    branches = []
    for key in sorted(k for k in node if k != _END):
        step = r"\s+" if key == _WORD_GAP else re.escape(key)
        branches.append(step + _trie_pattern(node[key]))
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    if _END in node:  # a phrase may end here, or go on to a longer one
        return f"(?:{body})?"
    return body


def phrases_pattern(phrases: Iterable[str]) -> str:
    """One pattern for all `phrases`, each matched as whole words in spaced scripts."""
    tries: dict[tuple[bool, bool], Trie] = {}
    for phrase in phrases:
        words = fold(phrase).split()
        if not words:
            continue
        text = _WORD_GAP.join(words)
        node = tries.setdefault((bounded(text[0]), bounded(text[-1])), {})
        for char in text:
            node = node.setdefault(char, {})
        node[_END] = {}
    parts = []
    for (before, after), trie in sorted(tries.items()):
        parts.append(
            ("(?<!\\w)" if before else "")
            + f"(?:{_trie_pattern(trie)})"
            + ("(?!\\w)" if after else "")
        )
    return "|".join(parts)


# The openings patterns share: a word boundary, or "no word character before".
_OPENINGS = (r"\b", r"(?<!\w)")


def patterns_pattern(patterns: Iterable[str]) -> list[str]:
    """The patterns as alternatives, those opening with the same boundary test grouped
    behind one copy of it: `\\b(?:a|b)` matches what `\\ba|\\bb` does."""
    grouped: dict[str, list[str]] = {opening: [] for opening in _OPENINGS}
    alone: list[str] = []
    for pattern in patterns:
        opening = next((o for o in _OPENINGS if pattern.startswith(o)), None)
        if opening is None or _has_top_level_branch(pattern):
            alone.append(f"(?:{pattern})")
        else:
            grouped[opening].append(f"(?:{pattern[len(opening) :]})")
    shared = [f"{o}(?:{'|'.join(rest)})" for o, rest in grouped.items() if rest]
    return [*shared, *alone]


def _has_top_level_branch(pattern: str) -> bool:
    """A `|` outside every group and character class: the opening binds only its first
    alternative, so it cannot be shared."""
    depth = 0
    in_class = escaped = False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            return True
    return False
