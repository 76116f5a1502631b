"""The marketplace rules over real SMTP, with time moved by a frozen clock."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.core.clock import FrozenClock
from gateway.core.response_times import ResponseSummary
from gateway.storage.reports import Reports
from gateway.storage.schema import Message
from tests.support.gateway import Parties, RunningGateway, running_gateway
from tests.support.mail import data_reply, read, text_message

START = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)

Reply = tuple[int, str]


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def gw(tmp_path: Path, db_url: str, clock: FrozenClock) -> Iterator[RunningGateway]:
    """A gateway (and its registry) on the frozen clock."""
    with running_gateway(tmp_path, db_url, clock=clock) as running:
        yield running


def _data(
    gw: RunningGateway, sender: str, rcpt: str, subject: str, in_reply_to: str | None
) -> Reply:
    """One message over SMTP; the reply to its DATA (RCPT must pass: the rules judge DATA)."""
    mail = text_message(sender=sender, to=rcpt, subject=subject, in_reply_to=in_reply_to)
    return data_reply(gw.port, mail)


def seller_writes(
    gw: RunningGateway, p: Parties, subject: str = "Your order", in_reply_to: str | None = None
) -> Reply:
    return _data(gw, p.seller_mailbox, p.buyer_alias, subject, in_reply_to)


def buyer_writes(gw: RunningGateway, p: Parties, subject: str = "My order") -> Reply:
    return _data(gw, p.buyer_address, p.seller_alias, subject, None)


def accepted(reply: Reply) -> int:
    """The archive id of an accepted message."""
    code, text = reply
    assert code == 250, text
    found = re.search(r"accepted for delivery as (\d+)", text)
    assert found, text
    return int(found.group(1))


def assert_refused(gw: RunningGateway, reply: Reply, rule_id: str, code: int = 550) -> None:
    """Refused in the session, naming the rule, and archived all the same."""
    enhanced = f"{code // 100}.7.1"
    assert reply[0] == code and reply[1].startswith(enhanced), reply
    assert rule_id in reply[1]
    with gw.gateway.database.reading() as session:
        latest = session.scalars(select(Message).order_by(Message.id.desc())).first()
        assert latest is not None
        assert latest.verdict == "refused"
        assert re.match(rf"{code}[ -]{enhanced} ", latest.smtp_reply)  # one line or several
        assert rule_id in latest.rule_hits.split(",")


def message_id_received(gw: RunningGateway, count: int, mailbox: str) -> str:
    """The Message-ID of the latest of `count` delivered messages, which went to `mailbox`."""
    latest = read(gw.delivered(count)[-1])
    assert str(latest["To"]) == mailbox
    return str(latest["Message-ID"])


def another_buyer(gw: RunningGateway, p: Parties, address: str) -> Parties:
    """A second buyer of the same seller, with an order placed now."""
    buyer_id, _ = gw.registry.add_buyer(address)
    pair = gw.registry.add_order(p.seller_id, buyer_id, None, None).pair
    return replace(
        p,
        buyer_id=buyer_id,
        buyer_address=address,
        buyer_alias=pair.buyer_alias,
        seller_alias=pair.seller_alias,
        pair_id=pair.pair_id,
    )


def summary(gw: RunningGateway, clock: FrozenClock, p: Parties) -> ResponseSummary:
    [only] = Reports(gw.gateway.database, clock).response_times(p.seller_id)
    return only


def test_suspended_seller_sends_nothing_but_hears_from_buyers(gw: RunningGateway) -> None:
    p = gw.register()
    gw.registry.set_suspended(p.seller_id, True)
    assert_refused(gw, seller_writes(gw, p), "seller.suspended")
    accepted(buyer_writes(gw, p))
    gw.registry.set_suspended(p.seller_id, False)
    accepted(seller_writes(gw, p))
    assert len(gw.delivered(2)) == 2


def test_contact_window(gw: RunningGateway, clock: FrozenClock) -> None:
    p = gw.register()  # the order is placed now
    clock.advance(29 * DAY)
    accepted(seller_writes(gw, p))
    clock.advance(2 * DAY)
    assert_refused(gw, seller_writes(gw, p), "window.contact")

    # The buyer writes: the seller may answer it, threading to what it received.
    accepted(buyer_writes(gw, p, subject="Where is my parcel?"))
    theirs = message_id_received(gw, 2, p.seller_mailbox)
    accepted(seller_writes(gw, p, subject="Re: Where is my parcel?", in_reply_to=theirs))

    # 31 days after the buyer's message, a reply to it comes too late.
    clock.advance(31 * DAY)
    late = seller_writes(gw, p, subject="Re: Where is my parcel?", in_reply_to=theirs)
    assert_refused(gw, late, "window.contact")


def test_pre_purchase_question(gw: RunningGateway) -> None:
    seller_id = gw.registry.add_seller("Sakura Shop", ["owner@sakura-shop.example"])
    buyer_id, _ = gw.registry.add_buyer("buyer@mail.example")
    pair = gw.registry.add_pair(seller_id, buyer_id)  # no order
    p = Parties(
        seller_id,
        buyer_id,
        "owner@sakura-shop.example",
        "buyer@mail.example",
        pair.buyer_alias,
        pair.seller_alias,
        pair.pair_id,
    )
    assert_refused(gw, buyer_writes(gw, p, subject="Do you ship to Osaka?"), "window.pre_purchase")
    assert_refused(gw, seller_writes(gw, p), "window.contact")  # without an order or question

    gw.registry.set_pre_purchase(seller_id, True)
    accepted(buyer_writes(gw, p, subject="Do you ship to Osaka?"))
    question = message_id_received(gw, 1, p.seller_mailbox)
    accepted(seller_writes(gw, p, subject="Re: Do you ship to Osaka?", in_reply_to=question))


def test_opted_out_buyer(gw: RunningGateway, clock: FrozenClock) -> None:
    p = gw.register()
    gw.registry.set_opted_out(p.buyer_address, True)
    assert_refused(gw, seller_writes(gw, p, subject="Our winter collection"), "optout")
    assert_refused(gw, seller_writes(gw, p, subject="Important: customs"), "optout")

    important = accepted(seller_writes(gw, p, subject="[Important] Your parcel is at customs"))
    accepted(seller_writes(gw, p, subject="[Additional information required] Your address"))
    accepted(buyer_writes(gw, p, subject="Which address?"))
    theirs = message_id_received(gw, 3, p.seller_mailbox)
    accepted(seller_writes(gw, p, subject="Re: Which address?", in_reply_to=theirs))
    assert len(gw.delivered(4)) == 4

    with gw.gateway.database.reading() as session:
        flagged = session.scalars(select(Message.id).where(Message.important)).all()
    assert flagged == [important]
    [share] = Reports(gw.gateway.database, clock).important_shares()
    # Every message of the seller counts, refused ones included.
    assert (share.seller_id, share.messages, share.important) == (p.seller_id, 5, 1)


@pytest.mark.parametrize(("permanent", "code"), [(False, 452), (True, 550)])
def test_daily_quota(
    tmp_path: Path, db_url: str, clock: FrozenClock, permanent: bool, code: int
) -> None:
    rules = f"quota_base = 3\nquota_per_order = 0\nquota_permanent = {str(permanent).lower()}"
    with running_gateway(tmp_path, db_url, clock=clock, rules_config=rules) as gw:
        p = gw.register()
        for _ in range(3):
            accepted(seller_writes(gw, p))
        over = seller_writes(gw, p)
        assert_refused(gw, over, "quota.daily", code)
        assert "3 messages a day" in over[1] and "00:00 UTC" in over[1]
        accepted(buyer_writes(gw, p))  # buyers have no quota

        clock.advance(timedelta(hours=14, minutes=1))  # 00:01 UTC the next day
        accepted(seller_writes(gw, p))


def test_response_times(gw: RunningGateway, clock: FrozenClock) -> None:
    p = gw.register()
    accepted(buyer_writes(gw, p, subject="Where is my parcel?"))
    theirs = message_id_received(gw, 1, p.seller_mailbox)
    clock.advance(timedelta(hours=2))
    accepted(seller_writes(gw, p, subject="Re: Where is my parcel?", in_reply_to=theirs))
    answered = summary(gw, clock, p)
    assert (answered.waits, answered.answered_in_time, answered.unanswered) == (1, 1, 0)
    assert answered.average_seconds == 2 * 3600

    thanks = accepted(buyer_writes(gw, p, subject="Thanks, got it"))
    clock.advance(timedelta(hours=30))
    open_one = summary(gw, clock, p)
    assert (open_one.waits, open_one.answered_in_time, open_one.unanswered) == (2, 1, 1)
    assert open_one.share(open_one.unanswered) == 0.5
    assert open_one.average_seconds == 2 * 3600  # only answered waits are averaged

    # The thanks needs no answer: it leaves the denominators.
    assert Reports(gw.gateway.database, clock).no_response_needed(str(thanks)) == thanks
    closed = summary(gw, clock, p)
    assert (closed.waits, closed.unanswered, closed.no_response_needed) == (1, 0, 1)
    assert closed.share(closed.answered_in_time) == 1.0


def test_vacation_time_counts_only_for_orders_placed_before_it(
    gw: RunningGateway, clock: FrozenClock
) -> None:
    earlier = gw.register()  # ordered before the vacation
    gw.registry.add_vacation(earlier.seller_id, START + HOUR, START + 25 * HOUR)
    clock.advance(2 * HOUR)
    during = another_buyer(gw, earlier, "carla@mail.example")  # ordered on vacation
    for p in (earlier, during):
        accepted(buyer_writes(gw, p))
    clock.advance(30 * HOUR)
    for p in (earlier, during):
        accepted(seller_writes(gw, p))
    # 30 h for the earlier order; 30 h less 23 h away for the other.
    result = summary(gw, clock, earlier)
    assert (result.answered_in_time, result.answered_late) == (1, 1)
    assert result.average_seconds == (30 + 7) / 2 * 3600
