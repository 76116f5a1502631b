"""The delivered message keeps the sender's MIME tree, and never the sender's address."""

from __future__ import annotations

import base64
import smtplib
from email.message import EmailMessage

import pytest

from tests.support.gateway import Parties, RunningGateway
from tests.support.mail import read, send

# A 1x1 PNG: real image bytes, so the inline part is a genuine image.
PIXEL = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def outlook_message(parties: Parties) -> EmailMessage:
    """What Outlook sends for an HTML mail with a pasted image and a PDF attached."""
    message = EmailMessage()
    message["From"] = f"Sakura Owner <{parties.seller_mailbox}>"
    message["To"] = parties.buyer_alias
    message["Subject"] = "Photo of your parcel"
    message["Date"] = "Sun, 22 Nov 2026 10:00:00 +0000"
    message["Message-ID"] = "<outlook-1@shop.example>"
    message["Thread-Index"] = "AQHZ"
    message["X-MS-Has-Attach"] = "yes"
    message.set_content("Here is the photo.\n\nKind regards\n")
    message.add_alternative(
        '<html><body><p>Here is the photo.</p><img src="cid:image001.png@01DA"></body></html>',
        subtype="html",
    )
    html = message.get_payload()[1]
    html.add_related(
        PIXEL,
        maintype="image",
        subtype="png",
        cid="<image001.png@01DA>",
        filename="image001.png",
        disposition="inline",
    )
    message.add_attachment(
        b"%PDF-1.4\n% invoice\n", maintype="application", subtype="pdf", filename="invoice.pdf"
    )
    return message


def tree(message: EmailMessage) -> list[tuple[str, bytes | None, str | None]]:
    return [
        (part.get_content_type(), part.get_payload(decode=True), part["Content-ID"])
        for part in message.walk()
    ]


def test_outlook_html_with_inline_image_keeps_its_structure(gw: RunningGateway) -> None:
    parties = gw.register()
    original = outlook_message(parties)
    send(gw.port, parties.seller_mailbox, [parties.buyer_alias], original)
    delivered = read(gw.delivered()[0])
    assert tree(delivered) == tree(original)
    assert [p.get_content_type() for p in delivered.walk()] == [
        "multipart/mixed",
        "multipart/alternative",
        "text/plain",
        "multipart/related",
        "text/html",
        "image/png",
        "application/pdf",
    ]
    assert "Thread-Index" not in delivered and "X-MS-Has-Attach" not in delivered


def test_address_in_signature_subject_and_html_is_replaced(gw: RunningGateway) -> None:
    parties = gw.register()
    shouting = parties.seller_mailbox.upper()
    message = EmailMessage()
    message["From"] = parties.seller_mailbox
    message["To"] = parties.buyer_alias
    message["Subject"] = f"Write to {parties.seller_mailbox} é"  # encoded word on the wire
    message.set_content(f"Thanks!\n-- \nOwner\nMail: {shouting}\n", charset="utf-8", cte="base64")
    message.add_alternative(
        f'<p>Mail <a href="mailto:{parties.seller_mailbox}">{parties.seller_mailbox}</a></p>',
        subtype="html",
        cte="quoted-printable",
    )
    send(gw.port, parties.seller_mailbox, [parties.buyer_alias], message)
    path = gw.delivered()[0]
    delivered = read(path)
    plain, html = delivered.get_payload()
    assert plain.get_content() == f"Thanks!\n-- \nOwner\nMail: {parties.seller_alias}\n"
    assert plain["Content-Transfer-Encoding"] == "base64"
    assert html.get_content().count(parties.seller_alias) == 2
    assert str(delivered["Subject"]) == f"Write to {parties.seller_alias} é"
    assert parties.seller_mailbox.encode() not in path.read_bytes().lower()


@pytest.mark.parametrize("charset", ["iso-2022-jp", "shift_jis", "koi8-r", "gb2312"])
def test_replacement_keeps_the_charset(gw: RunningGateway, charset: str) -> None:
    parties = gw.register()
    text = {
        "iso-2022-jp": "ご連絡ください",
        "shift_jis": "ご連絡ください",
        "koi8-r": "Пишите нам",
        "gb2312": "请联系我们",
    }[charset]
    message = EmailMessage()
    message["From"] = parties.seller_mailbox
    message["To"] = parties.buyer_alias
    message["Subject"] = "Order"
    message.set_content(f"{text}: {parties.seller_mailbox}\n", charset=charset)
    send(gw.port, parties.seller_mailbox, [parties.buyer_alias], message)
    delivered = read(gw.delivered()[0])
    assert delivered.get_content_charset() == charset
    assert delivered.get_content() == f"{text}: {parties.seller_alias}\n"


def test_address_inside_an_attachment_refuses_the_message(gw: RunningGateway) -> None:
    parties = gw.register()
    message = EmailMessage()
    message["From"] = parties.seller_mailbox
    message["To"] = parties.buyer_alias
    message["Subject"] = "Card"
    message.set_content("See my card attached.\n")
    message.add_attachment(
        f"BEGIN:VCARD\nEMAIL:{parties.seller_mailbox}\nEND:VCARD\n".encode(),
        maintype="text",
        subtype="vcard",
        filename="card.vcf",
    )
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(gw.port, parties.seller_mailbox, [parties.buyer_alias], message)
    assert refused.value.smtp_code == 550
    assert b"5.7.1" in refused.value.smtp_error
    assert b"card.vcf" in refused.value.smtp_error
    assert not list((gw.maildir / "new").iterdir())  # type: ignore[operator]


def test_address_revealed_in_reply_to_is_guarded_too(gw: RunningGateway) -> None:
    parties = gw.register()
    message = EmailMessage()
    message["From"] = parties.seller_mailbox
    message["Reply-To"] = "me@private-home.example"
    message["To"] = parties.buyer_alias
    message["Subject"] = "Order"
    message.set_content("Or write to me@private-home.example directly.\n")
    send(gw.port, parties.seller_mailbox, [parties.buyer_alias], message)
    path = gw.delivered()[0]
    assert b"private-home" not in path.read_bytes()
    assert read(path).get_content() == f"Or write to {parties.seller_alias} directly.\n"
