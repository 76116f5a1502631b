"""Seller -> buyer and buyer -> seller through real SMTP into the maildir."""

from __future__ import annotations

from email.utils import parseaddr

from tests.support.gateway import RunningGateway
from tests.support.mail import read, send, text_message


def test_seller_message_reaches_buyer_rewritten(gw: RunningGateway) -> None:
    parties = gw.register()
    message = text_message(
        sender=f"Real Name <{parties.seller_mailbox}>",
        to=parties.buyer_alias,
        extra={
            "Cc": "someone@else.example",
            "Reply-To": "private@seller-home.example",
            "X-Mailer": "Outlook 16.0",
            "Received": "from laptop (10.0.0.5) by smtp.shop.example",
            "DKIM-Signature": "v=1; a=rsa-sha256; d=shop.example; s=x; b=abc",
            "List-Unsubscribe": "<mailto:list@shop.example>",
        },
        body=f"Your parcel left today.\n--\nReal Name\n{parties.seller_mailbox}\n",
    )
    refused = send(gw.port, parties.seller_mailbox, [parties.buyer_alias], message)
    assert refused == {}

    [path] = gw.delivered()
    delivered = read(path)
    assert parseaddr(str(delivered["From"])) == ("Sakura Shop", parties.seller_alias)
    assert str(delivered["To"]) == parties.buyer_address
    assert str(delivered["Subject"]) == "Your order"
    assert str(delivered["Message-ID"]).endswith("@relay.example.test>")
    assert delivered["Return-Path"].startswith("<bounce-")
    kept = {name.lower() for name in delivered}
    for dropped in ("cc", "reply-to", "x-mailer", "received", "list-unsubscribe"):
        assert dropped not in kept
    # The sender's own DKIM signature is dropped; the one present is the gateway's.
    [signature] = delivered.get_all("DKIM-Signature")
    assert "d=relay.example.test" in str(signature) and "shop.example" not in str(signature)
    body = delivered.get_content()
    assert parties.seller_mailbox not in body
    assert parties.seller_alias in body
    raw = path.read_bytes().lower()
    for secret in (parties.seller_mailbox, "private@seller-home.example"):
        assert secret.encode() not in raw
    headers = raw.partition(b"\n\n")[0]
    assert b"real name" not in headers  # the original display name never reaches the buyer
