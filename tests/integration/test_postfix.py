"""Interop with a real Postfix: as a plain relay, as the seller's provider upstream of the
gateway, and as the gateway's smarthost."""

from __future__ import annotations

import re
import smtplib
from email.utils import parseaddr
from pathlib import Path

import dkim

from tests.support.archive import archived
from tests.support.dns import local_dns, publish_dkim_key
from tests.support.gateway import running_gateway, wait_for
from tests.support.mail import read, send, text_message
from tests.support.postfix import running_postfix
from tests.support.sink import free_port, smtp_sink

# One Received header with its folded continuation lines, as Postfix prepends it.
RECEIVED = re.compile(rb"Received: from [^\r\n]*\r\n(?:[ \t][^\r\n]*\r\n)*")


def test_postfix_relays_to_the_sink_unchanged_but_for_received(tmp_path: Path) -> None:
    original = (
        b"From: Ann <ann@client.example>\r\n"
        b"To: bob@far.example\r\n"
        b"Subject: relay check\r\n"
        b"Date: Sun, 22 Nov 2026 10:00:00 +0000\r\n"
        b"Message-ID: <relay-check@client.example>\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n"
        b"\r\n"
        b"Gr\xc3\xbc\xc3\x9fe aus K\xc3\xb6ln.\r\n"
        b".a line starting with a dot\r\n"
        b"trailing space \r\n"
        b"\r\n"
    )
    with (
        smtp_sink() as sink,
        running_postfix(tmp_path, port=free_port(), relay_to=("127.0.0.1", sink.port)) as pf,
        smtplib.SMTP("127.0.0.1", pf.port, timeout=30) as client,
    ):
        refused = client.sendmail(
            "ann@client.example", ["bob@far.example"], original, mail_options=["BODY=8BITMIME"]
        )
        assert refused == {}
        wait_for(lambda: sink.received)
        pf.wait_log("status=sent")
    [got] = sink.received
    assert (got.mail_from, got.rcpt_tos) == ("ann@client.example", ["bob@far.example"])
    received = RECEIVED.match(got.content)
    assert received, got.content[:300]
    assert b"by provider.example.test (Postfix)" in received.group()
    assert got.content[received.end() :] == original


def test_postfix_as_sellers_provider_delivers_through_the_gateway(
    tmp_path: Path, db_url: str
) -> None:
    with (
        local_dns() as dns,
        running_gateway(tmp_path, db_url, sender_auth="aligned", dns_port=dns.port) as gw,
    ):
        parties = gw.register()
        # The seller's domain lets its provider (Postfix, on loopback) send for it.
        dns.zones.txt[parties.seller_mailbox.split("@")[1]] = ["v=spf1 ip4:127.0.0.1 -all"]
        with running_postfix(
            tmp_path / "postfix", port=free_port(), relay_to=("127.0.0.1", gw.port), starttls=True
        ) as pf:
            message = text_message(
                sender=f"Real Name <{parties.seller_mailbox}>",
                to=parties.buyer_alias,
                body=f"Your parcel left today.\n--\n{parties.seller_mailbox}\n",
            )
            assert send(pf.port, parties.seller_mailbox, [parties.buyer_alias], message) == {}
            [path] = gw.delivered()
            assert f"relay=127.0.0.1[127.0.0.1]:{gw.port}" in pf.wait_log("status=sent")
            assert "TLS connection established to 127.0.0.1" in pf.log()
            [record] = archived(gw.gateway.database)
            assert record.raw_received is not None
            assert (
                b"spf=pass smtp.mailfrom=" + parties.seller_mailbox.encode() in record.raw_received
            )

            # Refused by the gateway (header From not registered): Postfix bounces it.
            spoofed = text_message(sender="intruder@evil.example", to=parties.buyer_alias)
            assert send(pf.port, parties.seller_mailbox, [parties.buyer_alias], spoofed) == {}
            log = pf.wait_log("status=bounced")
    # Only the alias's line: Postfix's notice to the seller bounces too (no relaying there).
    [bounced] = [
        line
        for line in log.splitlines()
        if f"to=<{parties.buyer_alias}>" in line and "status=bounced" in line
    ]
    assert "said: 550 5.7.1" in bounced and "Header From is not registered" in bounced

    delivered = read(path)
    assert parseaddr(str(delivered["From"]))[1] == parties.seller_alias
    assert str(delivered["To"]) == parties.buyer_address
    raw = path.read_bytes().lower()
    assert parties.seller_mailbox.encode() not in raw
    assert b"provider.example.test" not in raw  # Postfix's Received header is dropped too


def test_postfix_as_smarthost_keeps_the_dkim_signature_valid(tmp_path: Path, db_url: str) -> None:
    port = free_port()
    with (
        local_dns() as dns,
        smtp_sink() as sink,
        running_postfix(
            tmp_path / "postfix",
            port=port,
            relay_to=("127.0.0.1", sink.port),
            myhostname="smarthost.example.test",
        ) as pf,
        running_gateway(tmp_path, db_url, transport=f"smtp://127.0.0.1:{port}") as gw,
    ):
        publish_dkim_key(gw, dns)
        parties = gw.register()
        gw.seller_writes(parties)
        wait_for(lambda: sink.received)
        pf.wait_log("status=sent")
        [got] = sink.received
        assert dkim.verify(got.content, dnsfunc=dns.txt)
    assert got.rcpt_tos == [parties.buyer_address]
    assert got.mail_from.startswith("bounce-")
    assert got.mail_from.endswith("@relay.example.test")
    received = RECEIVED.match(got.content)
    assert received and b"by smarthost.example.test (Postfix)" in received.group()
    assert got.content[received.end() :].startswith(b"DKIM-Signature:")
    assert parties.seller_mailbox.encode() not in got.content
