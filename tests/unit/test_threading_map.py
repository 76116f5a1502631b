from __future__ import annotations

from gateway.core.model import Side, ThreadEntry
from gateway.pipeline.threading import map_references

SELLER_FIRST = ThreadEntry("<g1@relay>", "<s1@shop>", Side.SELLER)
BUYER_REPLY = ThreadEntry("<g2@relay>", "<b1@mail>", Side.BUYER)
THREAD = (SELLER_FIRST, BUYER_REPLY)


def test_gateway_id_of_a_message_the_recipient_wrote_becomes_its_own_id() -> None:
    assert map_references(["<g1@relay>"], THREAD, Side.BUYER) == ("<s1@shop>",)


def test_own_id_becomes_the_gateway_id_the_recipient_saw() -> None:
    assert map_references(["<s1@shop>", "<g2@relay>"], THREAD, Side.SELLER) == (
        "<g1@relay>",
        "<b1@mail>",
    )


def test_unknown_references_are_dropped_and_repeats_removed() -> None:
    refs = ["<x@elsewhere>", "<g1@relay>", "<g1@relay>"]
    assert map_references(refs, THREAD, Side.BUYER) == ("<s1@shop>",)


def test_other_sides_original_id_is_never_passed_through() -> None:
    # The buyer cannot know <s1@shop>; if it appears anyway it is not mapped.
    assert map_references(["<s1@shop>"], THREAD, Side.BUYER) == ()
