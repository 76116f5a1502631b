"""fold(): the one normalisation for matching. Its shortcut for ASCII text folds exactly as
the general way does."""

from __future__ import annotations

import random
import string
import unicodedata

import pytest

from gateway.core import text
from gateway.core.text import LONGEST_DIGIT_RUN, fold


def general(value: str) -> str:
    """fold() without its ASCII shortcut."""
    folded = unicodedata.normalize("NFKC", text._INVISIBLE.sub("", value)).casefold()
    folded = text._EMPTY_LINES.sub("\n\n", text._SPACES.sub(" ", folded))
    return text._DIGITS.sub(r"\1", folded)


@pytest.mark.parametrize("seed", range(200))
def test_ascii_text_folds_as_any_text_does(seed: int) -> None:
    rng = random.Random(seed)
    alphabet = string.printable + string.digits * 4 + "  \n\n\t"
    value = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 200)))
    if seed % 3 == 0:
        value += "7" * rng.randint(LONGEST_DIGIT_RUN - 5, LONGEST_DIGIT_RUN + 10)
    assert fold(value) == general(value)


def test_what_folding_does() -> None:
    assert fold("ＷＷＷ．Ｓｈｏｐ\u200b．ＣＯＭ") == "www.shop.com"
    assert fold("A  B\t\tC\n\n\n\nD") == "a b c\n\nd"
    assert fold("9" * 60) == "9" * LONGEST_DIGIT_RUN
