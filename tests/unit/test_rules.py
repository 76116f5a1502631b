"""Rules judge plain facts: no database, no sockets."""

from __future__ import annotations

from gateway.core.addresses import parse_mailbox
from gateway.core.model import Conversation, Party, Side
from gateway.pipeline.parse import parse_message
from gateway.policy.chains import DATA_CHAIN, RCPT_CHAIN, judge
from gateway.policy.rule import MessageContext, RecipientContext

DOMAIN = "relay.example.test"
SELLER = Party(
    Side.SELLER, f"sssssssssssssss2@{DOMAIN}", "Shop", ("owner@shop.example",), "owner@shop.example"
)
BUYER = Party(
    Side.BUYER, f"bbbbbbbbbbbbbbb2@{DOMAIN}", "Buyer", ("anna@mail.example",), "anna@mail.example"
)
TO_BUYER = Conversation(1, SELLER, BUYER)


def _ids(chain_result) -> list[str]:  # type: ignore[no-untyped-def]
    return [v.rule_id for v in chain_result.rejections]


def _message(from_lines: str) -> MessageContext:
    raw = f"{from_lines}To: x\r\nSubject: s\r\n\r\nbody\r\n".encode()
    return MessageContext("owner@shop.example", parse_message(raw), TO_BUYER)


def test_rcpt_chain() -> None:
    ours = parse_mailbox(f"{'b' * 16}@{DOMAIN}")
    assert judge(RCPT_CHAIN, RecipientContext(ours, DOMAIN, TO_BUYER, "owner@shop.example")).passed
    assert _ids(judge(RCPT_CHAIN, RecipientContext(ours, DOMAIN, None))) == ["rcpt.alias"]
    elsewhere = parse_mailbox("x@other.example")
    assert _ids(judge(RCPT_CHAIN, RecipientContext(elsewhere, DOMAIN, None))) == ["rcpt.relay"]


def test_registered_sender_passes() -> None:
    assert judge(DATA_CHAIN, _message("From: Owner <owner@SHOP.example>\r\n")).passed


def test_envelope_sender_outside_the_pair_gets_the_unknown_alias_reply() -> None:
    ours = parse_mailbox(f"{'b' * 16}@{DOMAIN}")
    stranger = RecipientContext(ours, DOMAIN, TO_BUYER, "mallory@evil.example")
    result = judge(RCPT_CHAIN, stranger)
    assert _ids(result) == ["sender.envelope"]
    missing = judge(RCPT_CHAIN, RecipientContext(ours, DOMAIN, None, "mallory@evil.example"))
    assert result.rejections[0].reply == missing.rejections[0].reply
    seller = RecipientContext(ours, DOMAIN, TO_BUYER, "owner@shop.example")
    assert judge(RCPT_CHAIN, seller).passed


def test_from_must_name_exactly_one_address() -> None:
    for lines in (
        "",
        "From: owner@shop.example, anna@mail.example\r\n",
        "From: owner@shop.example\r\nFrom: owner@shop.example\r\n",
        "From: owner@shop.example)<anna@mail.example>\r\n",
        "From: owner@shop.example <anna@mail.example>\r\n",
    ):
        assert _ids(judge(DATA_CHAIN, _message(lines))) == ["sender.from_syntax"], lines


def test_local_part_case_matters() -> None:
    assert _ids(judge(DATA_CHAIN, _message("From: OWNER@shop.example\r\n"))) == [
        "sender.header_from"
    ]
