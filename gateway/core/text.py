"""Text normalised for matching: the same words however they were typed."""

from __future__ import annotations

import re
import unicodedata

# Zero-width and invisible formatting characters used to split words past a filter.
_INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f"
    "\u200b-\u200f\u202a-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff]"
)


def fold(text: str) -> str:
    """NFKC (full-width and compatibility forms to plain ones), invisible characters
    removed, case folded. Mathematical styled letters become plain letters too."""
    return unicodedata.normalize("NFKC", _INVISIBLE.sub("", text)).casefold()


def shorten(text: str, limit: int = 60) -> str:
    """A quotation short enough for one reply line: whitespace collapsed, cut with '...'."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
