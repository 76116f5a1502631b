"""The smarthost misbehaves, each way an operator meets (an aiosmtpd smarthost scripted per
attempt): a 4xx at RCPT or at DATA, 421 and a closed connection, a connection closed after
the message with no reply, a reply slower than the attempt's timeout. Each is retried on the
schedule and the message delivered once; given up on, one DSN. A 5xx is one DSN at once.
Several recipients: only those that failed bounce."""

from __future__ import annotations

import email
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.core.clock import FrozenClock
from gateway.storage.schema import Outbound
from tests.support.gateway import RunningGateway, smarthost_gateway, wait_for
from tests.support.mail import send, text_message
from tests.support.sink import AT_RCPT, CLOSE, CLOSING, SILENCE

FAULTS = {
    "4xx at RCPT": f"{AT_RCPT}450 4.2.1 mailbox busy",
    "4xx at DATA": "451 4.3.0 local error",
    "421 and close": f"{CLOSING}421 4.3.2 shutting down",
    "close after DATA": CLOSE,
    "slower than the timeout": SILENCE,
}


def _parse(content: bytes) -> EmailMessage:
    message = email.message_from_bytes(content, policy=default)
    assert isinstance(message, EmailMessage)
    return message


def _rows(gw: RunningGateway) -> list[tuple[str, int, str | None]]:
    with gw.gateway.database.transaction() as session:
        rows = session.scalars(select(Outbound).order_by(Outbound.id)).all()
        return [(row.state, row.attempts, row.last_error) for row in rows]


def _status_blocks(dsn: EmailMessage) -> list[EmailMessage]:
    part = next(p for p in dsn.walk() if p.get_content_type() == "message/delivery-status")
    blocks = part.get_payload()
    assert isinstance(blocks, list)
    return blocks[1:]


@pytest.mark.parametrize("fault", FAULTS, ids=list(FAULTS))
def test_a_transient_fault_is_retried_and_delivers_once(
    tmp_path: Path, db_url: str, fault: str
) -> None:
    with smarthost_gateway(tmp_path, db_url, [FAULTS[fault]]) as (sink, gw):
        parties = gw.register()
        gw.seller_writes(parties, subject=f"through {fault}")
        wait_for(lambda: _rows(gw)[0][0] == "delivered", timeout=20)
        [(state, attempts, _)] = _rows(gw)
        assert (state, attempts, sink.attempts) == ("delivered", 2, 2)
        assert [str(_parse(r.content)["Subject"]) for r in sink.received] == [f"through {fault}"]


def test_a_fault_that_lasts_is_given_up_on_with_one_dsn(tmp_path: Path, db_url: str) -> None:
    clock = FrozenClock(datetime(2026, 12, 7, 12, 0, tzinfo=UTC))
    script = [f"{AT_RCPT}450 4.2.1 mailbox busy"] * 3
    with smarthost_gateway(tmp_path, db_url, script, clock) as (sink, gw):
        parties = gw.register()
        gw.seller_writes(parties)
        wait_for(lambda: _rows(gw)[0][1] == 1 and _rows(gw)[0][2] is not None)
        clock.advance(timedelta(seconds=1))
        wait_for(lambda: _rows(gw)[0][1] == 2 and sink.attempts == 2)
        clock.advance(timedelta(days=5))
        wait_for(lambda: len(sink.received) == 1)
        [dsn] = sink.received
        assert dsn.rcpt_tos == [parties.seller_mailbox] and dsn.mail_from == "<>"
        [block] = _status_blocks(_parse(dsn.content))
        assert block["Status"] == "5.4.7"
        assert "gave up after 3 attempts" in str(block["Diagnostic-Code"])
        wait_for(lambda: [r[0] for r in _rows(gw)] == ["failed", "delivered"])
        clock.advance(timedelta(days=1))
        assert len(sink.received) == 1 and sink.attempts == 4


def test_a_5xx_fails_at_once_and_only_the_refused_recipient_bounces(
    tmp_path: Path, db_url: str
) -> None:
    with smarthost_gateway(tmp_path, db_url) as (sink, gw):
        first = gw.register(buyer="anna@mail.example")
        ben, _ = gw.registry.add_buyer("ben@mail.example")
        ben_alias = gw.registry.add_order(first.seller_id, ben, None, None).pair.buyer_alias
        sink.refuse["ben@mail.example"] = "554 5.7.1 rejected by policy"
        message = text_message(sender=first.seller_mailbox, to=first.buyer_alias, subject="to both")
        refused = send(gw.port, first.seller_mailbox, [first.buyer_alias, ben_alias], message)
        assert refused == {}
        wait_for(lambda: len(sink.received) == 2)
        delivered, dsn = sorted(sink.received, key=lambda r: r.mail_from == "<>")
        assert delivered.rcpt_tos == [first.buyer_address]
        assert dsn.rcpt_tos == [first.seller_mailbox]
        [block] = _status_blocks(_parse(dsn.content))
        assert block["Final-Recipient"] == f"rfc822; {ben_alias}"
        assert block["Status"] == "5.7.1"
        assert b"ben@" not in dsn.content
        wait_for(lambda: sorted(r[0] for r in _rows(gw)) == ["delivered", "delivered", "failed"])
        assert sink.attempts == 3  # no retry of the 5xx
