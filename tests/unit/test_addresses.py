from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.core.addresses import (
    ALIAS_TOKEN_LENGTH,
    AddressError,
    BounceCheck,
    BounceSigner,
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


# -- VERP bounce addresses -----------------------------------------------------------------

SIGNED_AT = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)


def _signer(key: bytes = b"k" * 32) -> BounceSigner:
    return BounceSigner(key, timedelta(days=7), DOMAIN)


def _check(address: str, now: datetime = SIGNED_AT, key: bytes = b"k" * 32) -> object:
    found = _signer(key).read(parse_mailbox(address), now)
    return None if found is None else (found.token, found.check)


def test_a_verp_address_names_its_delivery_and_holds_until_it_expires() -> None:
    token = new_alias_token()
    address = _signer().address(token, SIGNED_AT)
    local = address.partition("@")[0]
    assert local.startswith(f"bounce-{token}-") and len(local) <= 64
    assert _check(address) == (token, BounceCheck.VALID)
    assert _check(address.upper().replace(DOMAIN.upper(), DOMAIN)) == (
        token,
        BounceCheck.VALID,
    )  # some servers change the case of the local part
    assert _check(address, SIGNED_AT + timedelta(days=7)) == (token, BounceCheck.VALID)
    assert _check(address, SIGNED_AT + timedelta(days=7, hours=1)) == (token, BounceCheck.EXPIRED)


def test_a_verp_address_that_was_not_signed_here_is_forged() -> None:
    token = new_alias_token()
    address = _signer().address(token, SIGNED_AT)
    local, _, domain = address.partition("@")
    prefix, hour, mac = local.rsplit("-", 2)
    later = f"{prefix}-{int(hour) + 1000}-{mac}@{domain}"  # its expiry pushed back
    other = new_alias_token()
    swapped = f"bounce-{other}-{hour}-{mac}@{domain}"  # another delivery's token
    for forged in (
        later,
        swapped,
        f"bounce-{token}@{domain}",  # no signature at all
        f"bounce-{token}-{hour}@{domain}",
        _signer(b"another key").address(token, SIGNED_AT),
    ):
        check = _check(forged)
        assert check is not None and check[1] is BounceCheck.FORGED, forged
    assert _check(f"{token}@{DOMAIN}") is None  # an alias, not a bounce address
    assert _check(address.replace(DOMAIN, "elsewhere.example")) is None
