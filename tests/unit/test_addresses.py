from __future__ import annotations

import pytest

from gateway.core.addresses import (
    ALIAS_TOKEN_LENGTH,
    AddressError,
    alias_token_of,
    new_alias_token,
    normalise,
    parse_mailbox,
)

DOMAIN = "relay.example.test"


def test_alias_tokens_are_80_bits_lowercase_and_distinct() -> None:
    tokens = {new_alias_token() for _ in range(2000)}
    assert len(tokens) == 2000
    for token in tokens:
        assert len(token) == ALIAS_TOKEN_LENGTH == 16  # 16 base32 characters = 80 bits
        assert token == token.lower()
        assert alias_token_of(parse_mailbox(f"{token}@{DOMAIN}"), DOMAIN) == token


def test_alias_match_ignores_case() -> None:
    token = new_alias_token()
    assert alias_token_of(parse_mailbox(f"{token.upper()}@RELAY.Example.TEST"), DOMAIN) == token


@pytest.mark.parametrize(
    "address",
    [
        "postmaster@relay.example.test",
        "abc@relay.example.test",
        "a" * 16 + "@other.example",
        "a" * 17 + "@relay.example.test",
        "a1b1c1d1e1f1g1h1@relay.example.test",
    ],
)
def test_not_alias_shaped(address: str) -> None:
    assert alias_token_of(parse_mailbox(address), DOMAIN) is None


def test_domain_is_lowercased_local_part_kept() -> None:
    assert normalise("<Seller.Name@Shop.EXAMPLE>") == "Seller.Name@shop.example"


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "no-at-sign",
        "a@",
        "@b.example",
        "a b@c.example",
        "a@b..example",
        "x" * 65 + "@a.example",
        "a@b.example\r\nRCPT TO:<c@d.example>",
        "@a,@b:user@c.example",
    ],
)
def test_rejects_what_is_not_a_mailbox(bad: str) -> None:
    with pytest.raises(AddressError):
        parse_mailbox(bad)
