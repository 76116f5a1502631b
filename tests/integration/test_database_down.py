"""A database that cannot commit gets 451 4.3.0, never 250, and loses nothing."""

from __future__ import annotations

import smtplib
from pathlib import Path

from sqlalchemy.engine import make_url

from tests.support.databases import postgres_schema
from tests.support.gateway import running_gateway
from tests.support.mail import send, text_message, wire_bytes
from tests.support.proxy import tcp_proxy


def test_database_down_answers_451_and_nothing_is_half_done(tmp_path: Path) -> None:
    with postgres_schema() as direct_url:
        url = make_url(direct_url)
        with tcp_proxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
            proxied = url.set(port=proxy.port).render_as_string(hide_password=False)
            with running_gateway(tmp_path, proxied) as gw:
                parties = gw.register()
                message = wire_bytes(
                    text_message(sender=parties.seller_mailbox, to=parties.buyer_alias)
                )

                # Down before RCPT: the alias cannot be looked up.
                proxy.cut()
                with smtplib.SMTP("127.0.0.1", gw.port, timeout=30) as client:
                    client.ehlo()
                    client.mail(parties.seller_mailbox)
                    code, text = client.rcpt(parties.buyer_alias)
                assert (code, text[:5]) == (451, b"4.3.0")

                # Down between RCPT and DATA: the commit fails.
                proxy.restore()
                with smtplib.SMTP("127.0.0.1", gw.port, timeout=30) as client:
                    client.ehlo()
                    client.mail(parties.seller_mailbox)
                    assert client.rcpt(parties.buyer_alias)[0] == 250
                    proxy.cut()
                    code, text = client.data(message)
                assert (code, text[:5]) == (451, b"4.3.0")

                # Back up: the sender's retry is accepted and delivered exactly once.
                proxy.restore()
                assert send(gw.port, parties.seller_mailbox, [parties.buyer_alias], message) == {}
                assert len(gw.delivered(1)) == 1
                assert len(list((gw.maildir / "new").iterdir())) == 1  # type: ignore[operator]
