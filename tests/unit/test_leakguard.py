"""The leak guard's search and replace: what it finds in ASCII text by str.find is what its
pattern finds, for any text."""

from __future__ import annotations

import random

import pytest

from gateway.pipeline.leakguard import LeakGuard

ADDRESSES = ("owner@shop.example", "o@shop.example", "owner@shop.example.co")
ALIAS = "sssssssssssssss2@relay.example.test"
# Pieces that make addresses, near misses and every kind of boundary.
PIECES = (
    "owner@shop.example", "OWNER@Shop.Example", "o@shop.example", "owner@shop.example.co",
    "x", "_", ".", "+", "-", " ", "\n", "@", "owner", "shop.example", "co", "é", "9", ">", "<",
)  # fmt: skip


@pytest.mark.parametrize("seed", range(300))
def test_ascii_scrub_replaces_what_the_pattern_replaces(seed: int) -> None:
    rng = random.Random(seed)
    guard = LeakGuard(ADDRESSES, ALIAS)
    assert guard._pattern is not None
    text = "".join(rng.choice(PIECES) for _ in range(rng.randint(1, 40)))
    expected = guard._pattern.sub(ALIAS, text)
    assert guard.scrub_text(text) == expected


def test_text_without_an_at_sign_is_left_as_it_is() -> None:
    guard = LeakGuard(ADDRESSES, ALIAS)
    text = "no address here, s\u017feller shop.example"  # a long s, which IGNORECASE folds
    assert guard.scrub_text(text) is text
