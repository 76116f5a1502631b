"""Rules judge plain facts: no database, no sockets."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from gateway.core.addresses import parse_mailbox
from gateway.core.model import (
    AuthCheck,
    Conversation,
    Direction,
    PairStanding,
    Party,
    SenderAuthentication,
    Side,
)
from gateway.pipeline.parse import parse_message
from gateway.policy.chains import RCPT_CHAIN, data_chain, judge
from gateway.policy.config import OFF_POLICY
from gateway.policy.content import ContentRuleSet
from gateway.policy.rule import MessageContext, RecipientContext
from gateway.policy.rules.marketplace import MarketplacePolicy

DOMAIN = "relay.example.test"
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
SELLER = Party(
    Side.SELLER, f"sssssssssssssss2@{DOMAIN}", "Shop", ("owner@shop.example",), "owner@shop.example"
)
BUYER = Party(
    Side.BUYER, f"bbbbbbbbbbbbbbb2@{DOMAIN}", "Buyer", ("anna@mail.example",), "anna@mail.example"
)
TO_BUYER = Conversation(
    1, 1, SELLER, BUYER, standing=PairStanding(latest_order_at=NOW - timedelta(days=1))
)
NO_CONTENT_RULES = ContentRuleSet(OFF_POLICY)
DATA_CHAIN = data_chain("aligned", MarketplacePolicy(), NO_CONTENT_RULES, Direction.SELLER_TO_BUYER)


def _ids(chain_result) -> list[str]:  # type: ignore[no-untyped-def]
    return [v.rule_id for v in chain_result.rejections]


def _message(from_lines: str) -> MessageContext:
    raw = f"{from_lines}To: x\r\nSubject: s\r\n\r\nbody\r\n".encode()
    return MessageContext("owner@shop.example", parse_message(raw), TO_BUYER, NOW)


def test_rcpt_chain() -> None:
    ours = parse_mailbox(f"{'b' * 16}@{DOMAIN}")
    assert judge(RCPT_CHAIN, RecipientContext(ours, DOMAIN, TO_BUYER, "owner@shop.example")).passed
    assert _ids(judge(RCPT_CHAIN, RecipientContext(ours, DOMAIN, None))) == ["rcpt.alias"]
    elsewhere = parse_mailbox("x@other.example")
    assert _ids(judge(RCPT_CHAIN, RecipientContext(elsewhere, DOMAIN, None))) == ["rcpt.relay"]


def test_a_suppressed_recipient_is_refused_to_its_party_only_and_only_until_then() -> None:
    ours = parse_mailbox(f"{'b' * 16}@{DOMAIN}")
    until = NOW + timedelta(days=7)
    suppressed = replace(TO_BUYER, recipient=replace(BUYER, suppressed_until=until))
    seller = RecipientContext(ours, DOMAIN, suppressed, "owner@shop.example", now=NOW)
    result = judge(RCPT_CHAIN, seller)
    assert _ids(result) == ["rcpt.suppressed"]
    reply = result.rejections[0].reply
    assert (reply.code, reply.enhanced) == (550, "5.1.1")
    assert "anna@" not in str(reply) and until.strftime("%Y-%m-%d") in str(reply)
    # A stranger learns nothing of it: the unknown-alias answer, as for any alias.
    stranger = RecipientContext(ours, DOMAIN, suppressed, "mallory@evil.example", now=NOW)
    assert _ids(judge(RCPT_CHAIN, stranger)) == ["sender.envelope"]
    later = RecipientContext(ours, DOMAIN, suppressed, "owner@shop.example", now=until)
    assert judge(RCPT_CHAIN, later).passed


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


def _authenticated(
    require: str, *checks: AuthCheck, sender: str = "owner@shop.example"
) -> list[str]:
    raw = f"From: {sender}\r\nTo: x\r\nSubject: s\r\n\r\nbody\r\n".encode()
    ctx = MessageContext(
        "owner@shop.example", parse_message(raw), TO_BUYER, NOW, SenderAuthentication(checks)
    )
    chain = data_chain(require, MarketplacePolicy(), NO_CONTENT_RULES, Direction.SELLER_TO_BUYER)
    return [v.reply.enhanced for v in judge(chain, ctx).rejections]


DKIM_PASS = AuthCheck("dkim", "pass", "mail.shop.example", "s1")
DKIM_OTHER = AuthCheck("dkim", "pass", "esp.example", "s1")
SPF_PASS = AuthCheck("spf", "pass", "shop.example", identity="owner@shop.example")
SPF_FAIL = AuthCheck("spf", "fail", "shop.example", identity="owner@shop.example")
SPF_TEMP = AuthCheck("spf", "temperror", "shop.example", identity="owner@shop.example")


def test_sender_authentication_modes() -> None:
    assert _authenticated("aligned", DKIM_PASS, SPF_FAIL) == []
    assert _authenticated("aligned", DKIM_OTHER, SPF_PASS) == []
    assert _authenticated("aligned", DKIM_OTHER, SPF_FAIL) == ["5.7.26"]
    assert _authenticated("dkim", DKIM_OTHER, SPF_PASS) == ["5.7.22"]
    assert _authenticated("spf", DKIM_PASS, SPF_FAIL) == ["5.7.23"]
    assert _authenticated("none", SPF_FAIL) == []
    assert _authenticated("aligned", AuthCheck("auth", "pass", identity="seller1-x")) == []


def test_a_dns_failure_without_any_pass_is_temporary() -> None:
    assert _authenticated("aligned", DKIM_OTHER, SPF_TEMP) == ["4.4.3"]
    assert _authenticated("aligned", DKIM_PASS, SPF_TEMP) == []


def test_alignment_uses_organizational_domains_from_the_public_suffix_list() -> None:
    from gateway.policy.domains import aligned, organizational_domain

    assert organizational_domain("mail.shop.example.co.uk") == "example.co.uk"
    assert organizational_domain("a.b.shop.example") == "shop.example"  # unknown suffix
    assert aligned("bounces.shop.example", "shop.example")
    assert not aligned("shop.example.evil.example", "shop.example")
    assert not aligned("other.co.uk", "shop.co.uk")
    assert not aligned("", "shop.example")
