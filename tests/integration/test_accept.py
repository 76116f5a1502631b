"""What the MX listener accepts and refuses, over real SMTP."""

from __future__ import annotations

import smtplib

import pytest
from sqlalchemy import select

from gateway.archive.store import decompress
from gateway.db.models import Message, Outbound
from tests.support.gateway import RunningGateway
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
    ("envelope", "header", "reason"),
    [
        ("intruder@evil.example", "{seller}", b"Sender is not registered"),
        ("{seller}", "intruder@evil.example", b"Header From is not registered"),
        ("{seller}", "{seller}, intruder@evil.example", b"one From field naming one address"),
        ("{buyer}", "{buyer}", b"Sender is not registered"),  # a buyer writing as the seller
    ],
)
def test_spoofed_sender_is_refused(
    gw: RunningGateway, envelope: str, header: str, reason: bytes
) -> None:
    parties = gw.register()
    names = {"seller": parties.seller_mailbox, "buyer": parties.buyer_address}
    message = text_message(sender=header.format(**names), to=parties.buyer_alias)
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(gw.port, envelope.format(**names), [parties.buyer_alias], message)
    assert refused.value.smtp_code == 550
    code = refused.value.smtp_error[:5]
    assert code in (b"5.7.1", b"5.6.0")
    assert reason in refused.value.smtp_error
    with gw.gateway.database.transaction() as session:
        archived = session.scalars(select(Message)).one()
        assert archived.verdict == "refused"
        assert archived.smtp_reply.startswith("550 " + code.decode())
        assert archived.raw_received is not None
        assert decompress(archived.raw_received) == wire_bytes(message)
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


def test_recipients_judged_one_by_one(gw: RunningGateway) -> None:
    """Two aliases of the seller's own pairs pass; a third pair's alias does not: the message
    goes to the two buyers and the seller gets a DSN that names only the alias."""
    ours = gw.register(buyer="anna@mail.example")
    second_id, _ = gw.registry.add_buyer("boris@mail.example")
    second = gw.registry.add_order(ours.seller_id, second_id, None, None).pair
    other = gw.register(shop="Other Shop", buyer="carla@mail.example")
    rcpts = [ours.buyer_alias, second.buyer_alias, other.buyer_alias]

    message = text_message(sender=ours.seller_mailbox, to=", ".join(rcpts))
    refused = send(gw.port, ours.seller_mailbox, rcpts, message)
    assert refused == {}  # accepted at RCPT; judged at DATA

    paths = gw.delivered(3)
    by_recipient = {read(p)["Delivered-To"]: read(p) for p in paths}
    assert set(by_recipient) == {"anna@mail.example", "boris@mail.example", ours.seller_mailbox}
    for buyer in ("anna@mail.example", "boris@mail.example"):
        assert str(by_recipient[buyer]["To"]) == buyer
    dsn = by_recipient[ours.seller_mailbox]
    assert dsn.get_content_type() == "multipart/report"
    assert dsn.get_param("report-type") == "delivery-status"
    assert dsn["Return-Path"] == "<>"
    raw = b"".join(p.read_bytes() for p in paths if read(p)["Delivered-To"] == ours.seller_mailbox)
    assert other.buyer_alias.encode() in raw
    assert b"5.7.1" in raw
    for hidden in (b"carla@mail.example", b"anna@mail.example", b"boris@mail.example"):
        assert hidden not in raw


def test_every_recipient_refused_names_each_reason(gw: RunningGateway) -> None:
    first = gw.register()
    other = gw.register(shop="Other Shop", buyer="carla@mail.example")
    rcpts = [other.buyer_alias, other.seller_alias]
    message = text_message(sender=first.seller_mailbox, to=other.buyer_alias)
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(gw.port, first.seller_mailbox, rcpts, message)
    assert refused.value.smtp_code == 550
    text = refused.value.smtp_error
    assert other.buyer_alias.encode() in text and other.seller_alias.encode() in text


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
