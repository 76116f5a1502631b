"""The bounce loop, through real sockets: a report to a delivery's VERP address fails it and
tells its sender in the gateway's words, is archived as about that delivery, and repeated
hard bounces suppress the address until an operator lifts it; an auto-reply is relayed as
its recipient's answer; forged and expired VERP addresses are refused at RCPT."""

from __future__ import annotations

import email
import smtplib
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

from sqlalchemy import select

from gateway.core.clock import FrozenClock
from gateway.storage.schema import Message, Outbound
from tests.support.gateway import RunningGateway, smarthost_gateway, wait_for
from tests.support.mail import send, text_message
from tests.support.process import one_json_object, run_cli
from tests.unit.test_bounces import dsn


def _parse(content: bytes) -> EmailMessage:
    message = email.message_from_bytes(content, policy=default)
    assert isinstance(message, EmailMessage)
    return message


def _rcpt(gw: RunningGateway, mail_from: str, rcpt: str) -> tuple[int, str]:
    with smtplib.SMTP("127.0.0.1", gw.port, timeout=30) as client:
        client.ehlo()
        client.mail(mail_from)
        code, text = client.rcpt(rcpt)
    return code, text.decode()


def _report_for(address: str, status: str) -> bytes:
    return dsn(status).replace(b"anna@mail.example", address.encode())


def test_hard_bounces_fail_the_delivery_tell_the_seller_and_suppress_the_buyer(
    tmp_path: Path, db_url: str
) -> None:
    with smarthost_gateway(tmp_path, db_url) as (sink, gw):
        parties = gw.register(buyer="anna.schmidt@mail.example")
        for n in range(2):
            gw.seller_writes(parties, subject=f"order {n}")
        wait_for(lambda: len(sink.received) == 2)
        verps = [r.mail_from for r in sink.received]
        for verp in verps:
            report = _report_for(parties.buyer_address, "5.1.1")
            assert send(gw.port, "", [verp], report) == {}
        wait_for(lambda: len(sink.received) == 4)

        for notice in sink.received[2:]:
            assert notice.rcpt_tos == [parties.seller_mailbox]
            assert notice.mail_from == "<>"
            assert b"anna.schmidt" not in notice.content.lower()
            status = next(
                p
                for p in _parse(notice.content).walk()
                if p.get_content_type() == "message/delivery-status"
            ).get_payload()[1]  # type: ignore[index]
            assert status["Final-Recipient"] == f"rfc822; {parties.buyer_alias}"
            assert status["Status"] == "5.1.1"

        with gw.gateway.database.transaction() as session:
            records = {m.id: m for m in session.scalars(select(Message))}
            outbound = {o.token: o for o in session.scalars(select(Outbound))}
        bounces = [m for m in records.values() if m.direction == "bounce"]
        assert len(bounces) == 2
        for bounce, verp in zip(sorted(bounces, key=lambda m: m.id), verps, strict=True):
            token = verp.removeprefix("bounce-").split("-")[0]
            assert bounce.about_id == outbound[token].message_id
            assert outbound[token].state == "failed"

        # Two hard bounces: the buyer's address takes nothing for a while, and the seller
        # is told so at RCPT; a stranger still hears only "no such recipient".
        def refused() -> tuple[int, str] | None:
            code, text = _rcpt(gw, parties.seller_mailbox, parties.buyer_alias)
            return (code, text) if code != 250 else None

        code, text = wait_for(refused, timeout=10)
        assert code == 550 and "5.1.1" in text and "rcpt.suppressed" in text
        assert "anna" not in text
        assert _rcpt(gw, "mallory@evil.example", parties.buyer_alias)[0] == 550

        config = tmp_path / "gateway.toml"
        listed = one_json_object(run_cli(config, "suppression", "list", "--json").stdout)
        [entry] = listed["suppressions"]
        assert entry["address"] == "a***@mail.example" and entry["hard_bounces"] == 2
        assert "anna" not in str(listed)
        removed = run_cli(config, "suppression", "remove", entry["ref"])
        assert removed.returncode == 0, removed.stderr
        wait_for(lambda: _rcpt(gw, parties.seller_mailbox, parties.buyer_alias)[0] == 250)
        assert run_cli(config, "suppression", "remove", entry["ref"]).returncode == 1


def test_a_smarthosts_5xx_for_an_unknown_mailbox_counts_as_a_hard_bounce(
    tmp_path: Path, db_url: str
) -> None:
    with smarthost_gateway(tmp_path, db_url) as (sink, gw):
        parties = gw.register(buyer="anna.schmidt@mail.example")
        sink.refuse[parties.buyer_address] = "550 5.1.1 <anna.schmidt@mail.example>: no such user"
        for n in range(2):
            gw.seller_writes(parties, subject=f"order {n}")
        wait_for(lambda: len(sink.received) == 2)  # the two DSNs, each after one attempt
        assert sink.attempts == 4
        for notice in sink.received:
            assert b"anna.schmidt" not in notice.content.lower()
        code, _ = wait_for(
            lambda: (r := _rcpt(gw, parties.seller_mailbox, parties.buyer_alias))[0] == 550 and r,
            timeout=10,
        )
        assert code == 550


def test_an_auto_reply_to_the_bounce_address_reaches_the_seller_as_the_buyers_answer(
    tmp_path: Path, db_url: str
) -> None:
    with smarthost_gateway(tmp_path, db_url) as (sink, gw):
        parties = gw.register()
        gw.seller_writes(parties, subject="your parcel")
        wait_for(lambda: sink.received)
        verp = sink.received[0].mail_from
        vacation = text_message(
            sender=parties.buyer_address, to=verp, subject="Out of office: your parcel"
        )
        vacation["Auto-Submitted"] = "auto-replied"
        assert send(gw.port, "", [verp], vacation) == {}
        wait_for(lambda: len(sink.received) == 2)
        relayed = sink.received[1]
        assert relayed.rcpt_tos == [parties.seller_mailbox]
        message = _parse(relayed.content)
        assert parties.buyer_alias in str(message["From"])
        assert parties.buyer_address.encode() not in relayed.content
        assert str(message["Subject"]) == "Out of office: your parcel"
        with gw.gateway.database.transaction() as session:
            directions = sorted(m.direction for m in session.scalars(select(Message)))
        assert directions == ["buyer_to_seller", "seller_to_buyer"]


def test_forged_and_expired_bounce_addresses_are_refused_like_unknown_aliases(
    tmp_path: Path, db_url: str
) -> None:
    clock = FrozenClock(datetime(2026, 12, 7, 12, 0, tzinfo=UTC))
    with smarthost_gateway(tmp_path, db_url, clock=clock) as (sink, gw):
        parties = gw.register()
        gw.seller_writes(parties)
        wait_for(lambda: sink.received)
        verp = sink.received[0].mail_from
        unknown = _rcpt(gw, "", f"{'a' * 16}@relay.example.test")
        local, _, domain = verp.partition("@")
        token, hour, mac = local.removeprefix("bounce-").split("-")
        forged = f"bounce-{token}-{int(hour) + 24}-{mac}@{domain}"
        assert _rcpt(gw, "", verp)[0] == 250
        assert _rcpt(gw, "", forged) == unknown
        assert _rcpt(gw, "", f"bounce-{token}@{domain}") == unknown
        clock.advance(timedelta(days=8))
        assert _rcpt(gw, "", verp) == unknown
