"""The two parties of one pair, as the pure pipeline tests hand them to rewrite()."""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.core.model import Party, Side

DOMAIN = "relay.example.test"
SELLER = Party(
    Side.SELLER,
    f"sssssssssssssss2@{DOMAIN}",
    "Sakura Shop",
    ("owner@shop.example",),
    "owner@shop.example",
)
BUYER = Party(
    Side.BUYER, f"bbbbbbbbbbbbbbb2@{DOMAIN}", "Buyer", ("anna@mail.example",), "anna@mail.example"
)
NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
