"""The MX path: a sender proves its From domain with DKIM or SPF, aligned (DMARC relaxed),
checked against a real DNS server on 127.0.0.1. The results are archived, never delivered."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from pathlib import Path

import dkim
import pytest

from gateway.delivery.dkim import dns_record, new_private_key
from tests.support.archive import archived
from tests.support.dns import LocalDns, local_dns
from tests.support.gateway import Parties, RunningGateway, running_gateway
from tests.support.mail import send, text_message, wire_bytes

SHOP = "sakura-shop.example"
SPF_LOOPBACK = "v=spf1 ip4:127.0.0.1 -all"


@pytest.fixture
def dns() -> Iterator[LocalDns]:
    with local_dns() as server:
        yield server


@pytest.fixture
def gw(tmp_path: Path, db_url: str, dns: LocalDns) -> Iterator[RunningGateway]:
    with running_gateway(tmp_path, db_url, sender_auth="aligned", dns_port=dns.port) as gateway:
        yield gateway


def _archived_original(gw: RunningGateway) -> bytes:
    first = archived(gw.gateway.database)[0].raw_received
    assert first is not None
    return first


def _signed(message: bytes, domain: str, selector: str, dns: LocalDns) -> bytes:
    """`message` DKIM-signed for `domain`, its key published on the local DNS server."""
    key = new_private_key()
    dns.zones.txt[f"{selector}._domainkey.{domain}"] = [dns_record(key)]
    signature = dkim.sign(message, selector.encode(), domain.encode(), key.encode())
    return signature + message


def _message(parties: Parties, sender: str | None = None) -> bytes:
    return wire_bytes(text_message(sender=sender or parties.seller_mailbox, to=parties.buyer_alias))


def _refusal(port: int, envelope: str, parties: Parties, raw: bytes) -> tuple[int, bytes]:
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(port, envelope, [parties.buyer_alias], raw)
    return refused.value.smtp_code, refused.value.smtp_error


def test_spf_pass_aligned_with_from_is_delivered_and_recorded_in_the_archive_only(
    gw: RunningGateway, dns: LocalDns
) -> None:
    dns.zones.txt[SHOP] = [SPF_LOOPBACK]
    parties = gw.register(shop="Sakura Shop")
    assert send(gw.port, parties.seller_mailbox, [parties.buyer_alias], _message(parties)) == {}
    delivered = gw.delivered()[0].read_bytes()
    assert b"Authentication-Results" not in delivered
    archived = _archived_original(gw)
    header = archived.split(b"\r\n\r\n", 1)[0].decode()
    assert header.startswith("Authentication-Results: relay.example.test;")
    assert "spf=pass smtp.mailfrom=owner@sakura-shop.example" in header
    assert "dkim=none" in header


def test_a_dkim_signature_of_the_from_domain_or_a_subdomain_is_enough(
    gw: RunningGateway, dns: LocalDns
) -> None:
    parties = gw.register(shop="Sakura Shop")
    signed = _signed(_message(parties), f"mail.{SHOP}", "s2026", dns)  # no SPF record at all
    assert send(gw.port, parties.seller_mailbox, [parties.buyer_alias], signed) == {}
    gw.delivered()
    header = _archived_original(gw).split(b"\r\n\r\n", 1)[0].decode()
    assert f"dkim=pass header.d=mail.{SHOP} header.s=s2026" in header
    assert "spf=none" in header


def test_no_aligned_pass_is_refused_with_what_was_found(gw: RunningGateway, dns: LocalDns) -> None:
    dns.zones.txt[SHOP] = ["v=spf1 ip4:192.0.2.1 -all"]  # loopback is not allowed to send
    parties = gw.register(shop="Sakura Shop")
    # A valid signature, but of another organization's domain.
    signed = _signed(_message(parties), "mailer.example", "esp", dns)
    code, text = _refusal(gw.port, parties.seller_mailbox, parties, signed)
    assert (code, text[:6]) == (550, b"5.7.26")
    header = _archived_original(gw).split(b"\r\n\r\n", 1)[0].decode()
    assert "dkim=pass header.d=mailer.example" in header and "spf=fail" in header


def test_spf_of_another_registered_mailbox_does_not_vouch_for_the_from_domain(
    gw: RunningGateway, dns: LocalDns
) -> None:
    dns.zones.txt["esp.example"] = [SPF_LOOPBACK]
    parties = gw.register(shop="Sakura Shop", mailboxes=("owner@esp.example",))
    code, _ = _refusal(gw.port, "owner@esp.example", parties, _message(parties))
    assert code == 550


def test_a_dns_failure_is_a_temporary_refusal(gw: RunningGateway, dns: LocalDns) -> None:
    dns.zones.servfail.add(SHOP)
    parties = gw.register(shop="Sakura Shop")
    code, text = _refusal(gw.port, parties.seller_mailbox, parties, _message(parties))
    assert (code, text[:5]) == (451, b"4.4.3")


@pytest.mark.parametrize(
    ("look_alike", "code"),
    [
        ("Owner@sakura-shop.example", b"5.7.1"),  # case of the local part
        ("owner@SAKURA-shop.example", None),  # domains are case-insensitive: accepted
        # Not a mailbox as SMTP writes one (no SMTPUTF8 here): unreadable as an address.
        ("\uff4fwner@sakura-shop.example", b"5.6.0"),  # full-width o
        ("\u043ewner@sakura-shop.example", b"5.6.0"),  # Cyrillic o
        ("owner@sakura-sh\u043ep.example", b"5.7.1"),  # Cyrillic o in the domain
    ],
)
def test_a_from_that_only_looks_like_the_registered_mailbox_is_refused(
    gw: RunningGateway, dns: LocalDns, look_alike: str, code: bytes | None
) -> None:
    dns.zones.txt[SHOP] = [SPF_LOOPBACK]
    parties = gw.register(shop="Sakura Shop")
    raw = (
        f"From: Sakura Shop <{look_alike}>\r\nTo: {parties.buyer_alias}\r\n"
        "Subject: hello\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "\r\nhello\r\n"
    ).encode()
    with smtplib.SMTP("127.0.0.1", gw.port, timeout=30) as client:
        client.ehlo()
        client.mail(parties.seller_mailbox)
        client.rcpt(parties.buyer_alias)
        reply = client.data(raw)
    if code is None:
        assert reply[0] == 250
    else:
        assert (reply[0], reply[1][:5]) == (550, code), reply
