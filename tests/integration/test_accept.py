"""What the MX listener accepts and refuses, over real SMTP."""

from __future__ import annotations

import smtplib
import socket
from email.message import EmailMessage

import pytest
from sqlalchemy import select

from gateway.storage.schema import Message, Outbound
from tests.support.archive import archived
from tests.support.gateway import Parties, RunningGateway
from tests.support.mail import read, send, text_message, wire_bytes


def _rcpt(gw: RunningGateway, mail_from: str, rcpt: str) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", gw.port, timeout=30) as client:
        client.ehlo()
        client.mail(mail_from)
        return client.rcpt(rcpt)


def test_greeting_names_no_software(gw: RunningGateway) -> None:
    with smtplib.SMTP() as client:
        code, greeting = client.connect("127.0.0.1", gw.port)
        assert code == 220
        assert b"python" not in greeting.lower()
        assert b"aiosmtpd" not in greeting.lower()


def test_the_ehlo_reply_comes_in_one_piece(gw: RunningGateway) -> None:
    """Every line of a multi-line reply is written at once, not one write per line: the
    first read after each EHLO holds the whole reply (line by line, some would not)."""
    with socket.create_connection(("127.0.0.1", gw.port), timeout=30) as connection:
        assert connection.recv(4096).startswith(b"220 ")
        for _ in range(20):
            connection.sendall(b"EHLO client.example\r\n")
            lines = connection.recv(65536).split(b"\r\n")
            assert len(lines) > 3 and lines[-1] == b"", lines
            assert all(line.startswith(b"250-") for line in lines[:-2])
            assert lines[-2].startswith(b"250 ")


@pytest.mark.parametrize(
    "rcpt", ["someone@other.example", "postmaster@example.com", "user@relay.example.test.evil"]
)
def test_relay_is_denied(gw: RunningGateway, rcpt: str) -> None:
    parties = gw.register()
    code, text = _rcpt(gw, parties.seller_mailbox, rcpt)
    assert code == 554
    assert text.startswith(b"5.7.1 Relay access denied")


@pytest.mark.parametrize(
    "local", ["aaaaaaaaaaaaaaaa", "postmaster", "not-an-alias", "abcdefghijklmnop0"]
)
def test_unknown_alias(gw: RunningGateway, local: str) -> None:
    parties = gw.register()
    code, text = _rcpt(gw, parties.seller_mailbox, f"{local}@relay.example.test")
    assert (code, text[:5]) == (550, b"5.1.1")


def test_aliases_match_case_insensitively(gw: RunningGateway) -> None:
    parties = gw.register()
    shouted = parties.buyer_alias.upper()
    send(
        gw.port,
        parties.seller_mailbox,
        [shouted],
        text_message(sender=parties.seller_mailbox, to=shouted),
    )
    [path] = gw.delivered()
    assert str(read(path)["To"]) == parties.buyer_address


@pytest.mark.parametrize(
    "envelope",
    ["intruder@evil.example", "{buyer}", "owner@other-shop.example", "Owner@Sakura-Shop.example"],
)
def test_sender_outside_the_pair_learns_nothing_at_rcpt(gw: RunningGateway, envelope: str) -> None:
    """To anyone but the pair's sending party, a real alias answers exactly as one that does
    not exist: RCPT replies reveal nothing."""
    parties = gw.register()
    gw.register(shop="Other Shop", buyer="carla@mail.example")
    sender = envelope.format(buyer=parties.buyer_address)
    real = _rcpt(gw, sender, parties.buyer_alias)
    invented = _rcpt(gw, sender, "aaaaaaaaaaaaaaaa@relay.example.test")
    assert real == invented
    assert (real[0], real[1][:5]) == (550, b"5.1.1")
    with gw.gateway.database.transaction() as session:
        assert session.scalars(select(Message)).all() == []


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("intruder@evil.example", b"Header From is not registered"),
        ("{seller}, intruder@evil.example", b"one From field naming one address"),
    ],
)
def test_header_from_spoofing_is_refused_and_archived(
    gw: RunningGateway, header: str, reason: bytes
) -> None:
    parties = gw.register()
    message = text_message(
        sender=header.format(seller=parties.seller_mailbox), to=parties.buyer_alias
    )
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(gw.port, parties.seller_mailbox, [parties.buyer_alias], message)
    assert refused.value.smtp_code == 550
    code = refused.value.smtp_error[:5]
    assert code in (b"5.7.1", b"5.6.0")
    assert reason in refused.value.smtp_error
    [record] = archived(gw.gateway.database)
    assert record.verdict == "refused"
    assert record.smtp_reply.startswith("550 " + code.decode())
    assert record.raw_received == wire_bytes(message)
    with gw.gateway.database.reading() as session:
        assert session.scalars(select(Outbound)).all() == []


def test_seller_writes_from_any_of_its_mailboxes(gw: RunningGateway) -> None:
    parties = gw.register(mailboxes=("orders@sakura-shop.example",))
    message = text_message(sender="orders@sakura-shop.example", to=parties.buyer_alias)
    send(gw.port, "orders@sakura-shop.example", [parties.buyer_alias], message)
    [path] = gw.delivered()
    assert str(read(path)["To"]) == parties.buyer_address


def test_mail_for_seller_goes_to_its_first_mailbox(gw: RunningGateway) -> None:
    parties = gw.register(mailboxes=("orders@sakura-shop.example",))
    message = text_message(sender=parties.buyer_address, to=parties.seller_alias)
    send(gw.port, parties.buyer_address, [parties.seller_alias], message)
    [path] = gw.delivered()
    delivered = read(path)
    assert str(delivered["To"]) == parties.seller_mailbox
    assert str(delivered["From"]) == f"Buyer <{parties.buyer_alias}>"


def _two_hats(gw: RunningGateway) -> tuple[Parties, str, str]:
    """A seller (mailboxes owner@ and orders@) whose owner@ also shops at another seller:
    owner@ may write both to its own buyer and, as a buyer, to the other shop. Returns the
    seller's parties, the other shop's seller alias, and the other shop's mailbox."""
    ours = gw.register(buyer="anna@mail.example", mailboxes=("orders@sakura-shop.example",))
    other_shop = gw.registry.add_seller("Other Shop", ["owner@other-shop.example"])
    as_buyer, _ = gw.registry.add_buyer(ours.seller_mailbox)
    other = gw.registry.add_order(other_shop, as_buyer, None, None).pair
    return ours, other.seller_alias, "owner@other-shop.example"


def _with_card(message: EmailMessage, address: str) -> EmailMessage:
    message.add_attachment(
        f"EMAIL:{address}\n".encode(), maintype="text", subtype="vcard", filename="card.vcf"
    )
    return message


def test_recipients_judged_one_by_one(gw: RunningGateway) -> None:
    """Verdicts that differ at DATA: a card naming the seller's second mailbox is a leak to
    its own buyer, but nothing of the other shop's buyer. The message goes where it may, and
    the sender gets a DSN for the rest that names only the alias."""
    ours, other_alias, other_mailbox = _two_hats(gw)
    rcpts = [ours.buyer_alias, other_alias]
    message = _with_card(
        text_message(sender=ours.seller_mailbox, to=", ".join(rcpts)), "orders@sakura-shop.example"
    )
    assert send(gw.port, ours.seller_mailbox, rcpts, message) == {}

    paths = gw.delivered(2)
    by_recipient = {read(p)["Delivered-To"]: p for p in paths}
    assert set(by_recipient) == {other_mailbox, ours.seller_mailbox}
    assert str(read(by_recipient[other_mailbox])["To"]) == other_mailbox
    dsn = read(by_recipient[ours.seller_mailbox])
    assert dsn.get_content_type() == "multipart/report"
    assert dsn.get_param("report-type") == "delivery-status"
    assert dsn["Return-Path"] == "<>"
    status_part = next(p for p in dsn.walk() if p.get_content_type() == "message/delivery-status")
    failed = [block["Final-Recipient"] for block in status_part.get_payload()[1:]]
    assert failed == [f"rfc822; {ours.buyer_alias}"]
    assert b"5.7.1" in by_recipient[ours.seller_mailbox].read_bytes()
    assert b"anna@mail.example" not in by_recipient[ours.seller_mailbox].read_bytes()


def test_every_recipient_refused_names_each_reason(gw: RunningGateway) -> None:
    ours, other_alias, _ = _two_hats(gw)
    rcpts = [ours.buyer_alias, other_alias]
    # From orders@: the seller's own, not the shopper's; and the card leaks it to anna.
    message = _with_card(
        text_message(sender="orders@sakura-shop.example", to="x"), "orders@sakura-shop.example"
    )
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(gw.port, ours.seller_mailbox, rcpts, message)
    assert refused.value.smtp_code == 550
    text = refused.value.smtp_error
    assert ours.buyer_alias.encode() in text and other_alias.encode() in text
    assert b"card.vcf" in text and b"Header From is not registered" in text


def test_message_too_big_is_refused(gw: RunningGateway) -> None:
    parties = gw.register()
    limit = gw.settings.smtp.max_message_size
    body = "x" * 76 + "\n"
    message = text_message(
        sender=parties.seller_mailbox, to=parties.buyer_alias, body=body * (limit // len(body) + 10)
    )
    # A client that declares the size (RFC 1870) is refused at MAIL FROM ...
    with pytest.raises(smtplib.SMTPSenderRefused) as refused:
        send(gw.port, parties.seller_mailbox, [parties.buyer_alias], message)
    assert refused.value.smtp_code == 552
    assert refused.value.smtp_error.startswith(b"5.3.4")
    # ... and one that does not, after its data.
    with smtplib.SMTP("127.0.0.1", gw.port, timeout=30) as client:
        client.ehlo()
        assert int(client.esmtp_features["size"]) == limit
        client.mail(parties.seller_mailbox)
        client.rcpt(parties.buyer_alias)
        code, text = client.data(wire_bytes(message))
    assert (code, text[:5]) == (552, b"5.3.4")
