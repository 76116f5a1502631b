"""Text normalised for matching: the same words however they were typed."""

from __future__ import annotations

import re
import unicodedata

# Zero-width and invisible formatting characters used to split words past a filter.
_INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f"
    "\u200b-\u200f\u202a-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff]"
)


# Runs no reader tells apart from shorter ones. Cut short, they also keep every pattern
# that repeats over spaces or digits linear in the text's length.
_SPACES = re.compile(r"[^\S\n]{2,}")
_EMPTY_LINES = re.compile(r"\n\s*\n\s*")  # a paragraph break, however tall
LONGEST_DIGIT_RUN = 40  # longer than any phone, order or tracking number
_DIGITS = re.compile(rf"(\d{{{LONGEST_DIGIT_RUN}}})\d+")


def fold(text: str) -> str:
    """NFKC (full-width and compatibility forms to plain ones), invisible characters
    removed, case folded: mathematical styled letters become plain letters too. Runs of
    spaces become one space, empty lines one paragraph break, and digit runs are cut to
    LONGEST_DIGIT_RUN."""
    if text.isascii():
        return _fold_ascii(text)
    folded = unicodedata.normalize("NFKC", _INVISIBLE.sub("", text)).casefold()
    folded = _EMPTY_LINES.sub("\n\n", _SPACES.sub(" ", folded))
    return _DIGITS.sub(r"\1", folded)


_OTHER_BLANKS = "\t\r\x0b\x0c"  # ASCII white space other than the space and the line end
_DIGITS_AS_ZERO = str.maketrans("0123456789", "0" * 10)
_LONG_RUN = "0" * (LONGEST_DIGIT_RUN + 1)


def _fold_ascii(text: str) -> str:
    """fold() for ASCII text: nothing is invisible, NFKC changes nothing, case folding is
    lower(); each replacement runs only where str's own searches find something to replace."""
    folded = text.lower()
    if "  " in folded or any(blank in folded for blank in _OTHER_BLANKS):
        folded = _SPACES.sub(" ", folded)
    folded = _EMPTY_LINES.sub("\n\n", folded)
    if _LONG_RUN in folded.translate(_DIGITS_AS_ZERO):
        folded = _DIGITS.sub(r"\1", folded)
    return folded


def is_cjk(char: str) -> bool:
    """A character of the CJK scripts and their punctuation: text written without spaces."""
    return ord(char) >= 0x2E80


def shorten(text: str, limit: int = 60) -> str:
    """A quotation short enough for one reply line: whitespace collapsed, cut with '...'."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
