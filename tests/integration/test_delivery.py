"""Delivery through a smarthost (an aiosmtpd sink): retries, bounces, give-up."""

from __future__ import annotations

import email
from datetime import UTC, datetime, timedelta
from email.message import Message
from email.policy import default
from pathlib import Path

from sqlalchemy import select

from gateway.core.clock import FrozenClock
from gateway.storage.schema import Outbound
from tests.support.gateway import running_gateway, smarthost_gateway, wait_for
from tests.support.mail import send, text_message
from tests.support.sink import SILENCE, free_port, smtp_sink


def _parse(content: bytes) -> Message:
    return email.message_from_bytes(content, policy=default)


def _states(gw) -> list[tuple[str, int]]:  # type: ignore[no-untyped-def]
    with gw.gateway.database.transaction() as session:
        rows = session.scalars(select(Outbound).order_by(Outbound.id)).all()
        return [(row.state, row.attempts) for row in rows]


def _retry_recorded(gw) -> bool:  # type: ignore[no-untyped-def]
    with gw.gateway.database.transaction() as session:
        row = session.scalars(select(Outbound)).one()
        return row.state == "queued" and row.attempts == 1 and row.last_error is not None


def _dsn_status(dsn: Message) -> Message:
    status_part = next(p for p in dsn.walk() if p.get_content_type() == "message/delivery-status")
    blocks = status_part.get_payload()
    return blocks[1]  # type: ignore[no-any-return]


def test_delivered_through_smarthost_with_bounce_address(tmp_path: Path, db_url: str) -> None:
    with smarthost_gateway(tmp_path, db_url) as (sink, gw):
        parties = gw.register()
        gw.seller_writes(parties)
        wait_for(lambda: sink.received)
        [got] = sink.received
        assert got.rcpt_tos == [parties.buyer_address]
        assert got.mail_from.startswith("bounce-")
        assert got.mail_from.endswith("@relay.example.test")
        assert parties.seller_mailbox.encode() not in got.content
        wait_for(lambda: _states(gw) == [("delivered", 1)])


def test_temporary_failure_is_retried(tmp_path: Path, db_url: str) -> None:
    with smarthost_gateway(tmp_path, db_url, ["451 4.3.0 try later", "421 4.7.0 busy"]) as (
        sink,
        gw,
    ):
        parties = gw.register()
        gw.seller_writes(parties)
        wait_for(lambda: _states(gw) == [("delivered", 3)])
        assert sink.attempts == 3
        assert len(sink.received) == 1


def test_permanent_failure_sends_dsn_to_the_seller(tmp_path: Path, db_url: str) -> None:
    rejection = "550 5.1.1 <buyer@mail.example>: Recipient address rejected: User unknown"
    with smarthost_gateway(tmp_path, db_url, [rejection]) as (sink, gw):
        parties = gw.register()
        gw.seller_writes(parties)
        wait_for(lambda: sink.received)
        [dsn_delivery] = sink.received
        assert dsn_delivery.mail_from == "<>"  # null sender: a DSN is never bounced
        assert dsn_delivery.rcpt_tos == [parties.seller_mailbox]
        assert b"buyer@mail.example" not in dsn_delivery.content
        dsn = _parse(dsn_delivery.content)
        assert dsn.get_content_type() == "multipart/report"
        recipient = _dsn_status(dsn)
        assert recipient["Final-Recipient"] == f"rfc822; {parties.buyer_alias}"
        assert recipient["Action"] == "failed"
        assert recipient["Status"] == "5.1.1"
        assert "User unknown" in recipient["Diagnostic-Code"]
        wait_for(lambda: _states(gw) == [("failed", 1), ("delivered", 1)])


def test_gives_up_after_five_days_and_tells_the_seller(tmp_path: Path, db_url: str) -> None:
    clock = FrozenClock(datetime(2026, 11, 22, 12, 0, tzinfo=UTC))
    with smarthost_gateway(tmp_path, db_url, ["451 4.4.1 no answer"] * 2, clock) as (sink, gw):
        parties = gw.register()
        gw.seller_writes(parties)
        wait_for(lambda: _retry_recorded(gw))  # the first attempt failed and was recorded
        clock.advance(timedelta(days=5, seconds=1))
        wait_for(lambda: sink.received)
        [dsn_delivery] = sink.received
        assert dsn_delivery.rcpt_tos == [parties.seller_mailbox]
        recipient = _dsn_status(_parse(dsn_delivery.content))
        assert recipient["Status"] == "5.4.7"
        assert "gave up after 2 attempts" in recipient["Diagnostic-Code"]
        wait_for(lambda: _states(gw) == [("failed", 2), ("delivered", 1)])


def test_bounced_dsn_is_not_bounced_again(tmp_path: Path, db_url: str) -> None:
    with smarthost_gateway(tmp_path, db_url, ["550 5.1.1 no such user"] * 2) as (sink, gw):
        parties = gw.register()
        gw.seller_writes(parties)
        wait_for(lambda: _states(gw) == [("failed", 1), ("failed", 1)])
        assert sink.attempts == 2
        assert sink.received == []


def _bounce_for(original_rcpt: str, status: str, action: str = "failed") -> bytes:
    """A DSN as the buyer's provider sends it after it had accepted the message."""
    return (
        "From: MAILER-DAEMON@mx.mail.example\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nMailbox full\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.mail.example\r\n\r\n"
        f"Final-Recipient: rfc822; {original_rcpt}\r\nAction: {action}\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: smtp; 552 {status} <{original_rcpt}> mailbox full\r\n"
        "--b--\r\n"
    ).encode()


def test_late_bounce_becomes_a_dsn_without_the_buyers_address(tmp_path: Path, db_url: str) -> None:
    with smarthost_gateway(tmp_path, db_url) as (sink, gw):
        parties = gw.register()
        gw.seller_writes(parties)
        wait_for(lambda: sink.received)
        bounce_address = sink.received[0].mail_from

        # A delay notice changes nothing; the failure report fails the delivery and is
        # reported to the seller once, however often it arrives.
        send(gw.port, "", [bounce_address], _bounce_for(parties.buyer_address, "4.2.2", "delayed"))
        for _ in range(2):
            send(gw.port, "", [bounce_address], _bounce_for(parties.buyer_address, "5.2.2"))
        wait_for(lambda: len(sink.received) == 2)
        notice = sink.received[1]
        assert notice.rcpt_tos == [parties.seller_mailbox]
        assert parties.buyer_address.encode() not in notice.content
        recipient = _dsn_status(_parse(notice.content))
        assert recipient["Final-Recipient"] == f"rfc822; {parties.buyer_alias}"
        assert recipient["Status"] == "5.2.2"
        assert "mailbox full" in recipient["Diagnostic-Code"]
        wait_for(lambda: _states(gw) == [("failed", 1), ("delivered", 1)])


def test_unknown_bounce_address_is_refused(gw) -> None:  # type: ignore[no-untyped-def]
    import smtplib

    with smtplib.SMTP("127.0.0.1", gw.port, timeout=30) as client:
        client.ehlo()
        client.mail("")
        code, _ = client.rcpt("bounce-aaaaaaaaaaaaaaaa@relay.example.test")
    assert code == 550


def test_connection_dropped_by_the_smarthost_is_replaced(tmp_path: Path, db_url: str) -> None:
    """Deliveries reuse smarthost connections; one the server closed while idle is not an
    error: the next message goes over a new connection, and nothing is retried."""
    port = free_port()
    with running_gateway(tmp_path, db_url, transport=f"smtp://127.0.0.1:{port}") as gw:
        parties = gw.register()

        def one(subject: str) -> None:
            send(
                gw.port,
                parties.seller_mailbox,
                [parties.buyer_alias],
                text_message(
                    sender=parties.seller_mailbox, to=parties.buyer_alias, subject=subject
                ),
            )

        with smtp_sink(port=port) as first:
            one("first")
            wait_for(lambda: first.received)
        # The server went away and came back: the idle connection is dead.
        with smtp_sink(port=port) as second:
            one("second")
            wait_for(lambda: second.received)
            assert second.attempts == 1
        wait_for(lambda: _states(gw) == [("delivered", 1), ("delivered", 1)])


def test_a_smarthost_that_stops_answering_is_given_up_on_and_tried_again(
    tmp_path: Path, db_url: str
) -> None:
    """The attempt ends after [delivery] attempt_timeout (2 s in the tests), whatever the
    smarthost does; the next attempt delivers the message, once."""
    with smarthost_gateway(tmp_path, db_url, [SILENCE]) as (sink, gw):
        parties = gw.register()
        gw.seller_writes(parties)
        wait_for(lambda: _states(gw) == [("delivered", 2)], timeout=20)
        assert sink.attempts == 2 and len(sink.received) == 1
