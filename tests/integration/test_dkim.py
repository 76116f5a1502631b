"""Every delivered message is DKIM-signed for the alias domain; verified over real DNS."""

from __future__ import annotations

from pathlib import Path

import dkim

from gateway.delivery.dkim import new_private_key
from gateway.storage.dkim_keys import DkimKeyStore
from tests.support.dns import local_dns, publish_dkim_key
from tests.support.gateway import RunningGateway, running_gateway, wait_for
from tests.support.mail import send, text_message
from tests.support.sink import Sink, smtp_sink

DOMAIN = "relay.example.test"


def _deliver_one(gw: RunningGateway, sink: Sink, subject: str) -> bytes:
    parties = gw.register(shop=f"Shop {subject}")
    send(
        gw.port,
        parties.seller_mailbox,
        [parties.buyer_alias],
        text_message(sender=parties.seller_mailbox, to=parties.buyer_alias, subject=subject),
    )
    wait_for(lambda: any(subject.encode() in r.content for r in sink.received))
    return next(r.content for r in sink.received if subject.encode() in r.content)


def test_delivered_mail_is_signed_and_verifies(tmp_path: Path, db_url: str) -> None:
    with (
        local_dns() as dns,
        smtp_sink() as sink,
        running_gateway(tmp_path, db_url, transport=f"smtp://127.0.0.1:{sink.port}") as gw,
    ):
        publish_dkim_key(gw, dns)
        signed = _deliver_one(gw, sink, "first order")
        assert signed.startswith(b"DKIM-Signature:")
        assert dkim.verify(signed, dnsfunc=dns.txt)
        header = signed.split(b"\r\n\r\n", 1)[0].replace(b"\r\n ", b" ").replace(b"\r\n\t", b" ")
        assert b"d=relay.example.test" in header
        assert b"s=bsm1" in header

        # Altered or added headers break it: the singletons are over-signed.
        assert not dkim.verify(
            signed.replace(b"Subject: first order", b"Subject: pay here"), dnsfunc=dns.txt
        )
        assert not dkim.verify(b"From: Attacker <a@evil.example>\r\n" + signed, dnsfunc=dns.txt)
        assert not dkim.verify(
            signed.replace(b"\r\n\r\n", b"\r\nSubject: pay here\r\n\r\n", 1), dnsfunc=dns.txt
        )


def test_rotation_signs_with_the_new_key_and_old_mail_still_verifies(
    tmp_path: Path, db_url: str
) -> None:
    with local_dns() as dns, smtp_sink() as sink:
        transport = f"smtp://127.0.0.1:{sink.port}"
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        with running_gateway(tmp_path / "a", db_url, transport=transport) as gw:
            publish_dkim_key(gw, dns)
            before = _deliver_one(gw, sink, "before rotation")
            DkimKeyStore(gw.gateway.database, gw.gateway.clock).add("bsm2", new_private_key())
        # A restarted instance (or any instance, within a minute) signs with the new key.
        with running_gateway(tmp_path / "b", db_url, transport=transport) as gw:
            publish_dkim_key(gw, dns)
            after = _deliver_one(gw, sink, "after rotation")
        assert b"s=bsm2" in after.split(b"\r\n\r\n", 1)[0].replace(b"\r\n ", b" ")
        assert dkim.verify(before, dnsfunc=dns.txt)  # bsm1's record stays published
        assert dkim.verify(after, dnsfunc=dns.txt)


def test_maildir_deliveries_are_signed_too(tmp_path: Path, db_url: str) -> None:
    with local_dns() as dns, running_gateway(tmp_path, db_url) as gw:
        publish_dkim_key(gw, dns)
        parties = gw.register()
        gw.seller_writes(parties)
        [path] = gw.delivered()
        stored = path.read_bytes().replace(b"\n", b"\r\n")  # maildir files use LF
        assert b"\r\nDKIM-Signature:" in stored
        assert dkim.verify(stored, dnsfunc=dns.txt)


def test_dkim_commands(tmp_path: Path, db_url: str) -> None:
    from tests.support.gateway import write_config
    from tests.support.process import cli_json, one_json_object, run_cli

    config = write_config(tmp_path, db_url, f"maildir:{tmp_path / 'outbox'}")
    first = cli_json(config, "dkim", "show")
    assert first["selector"] == "bsm1" and first["domain"] == DOMAIN
    assert first["txt"].startswith("v=DKIM1; k=rsa; p=")
    assert cli_json(config, "dkim", "show") == first  # made once, then shown

    rotated = cli_json(config, "dkim", "keygen", "--selector", "bsm2")
    assert rotated["selector"] == "bsm2" and rotated["txt"] != first["txt"]
    assert cli_json(config, "dkim", "show") == rotated

    again = run_cli(config, "dkim", "keygen", "--selector", "bsm2", "--json")
    assert again.returncode == 1
    assert "already in use" in one_json_object(again.stdout)["error"]
