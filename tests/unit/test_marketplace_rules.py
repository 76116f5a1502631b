"""The marketplace rules and the response-time arithmetic, judged on plain facts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.header import Header

import pytest

from gateway.core.model import (
    Conversation,
    PairStanding,
    Party,
    QuotaStatus,
    Side,
    ThreadEntry,
    Violation,
)
from gateway.core.response_times import (
    NO_RESPONSE_NEEDED,
    REPLIED,
    Period,
    WaitRecord,
    counted_seconds,
    summarise,
)
from gateway.pipeline.parse import parse_message
from gateway.policy.rule import MessageContext
from gateway.policy.rules.marketplace import (
    BuyerOptedOut,
    ContactWindow,
    DailyQuota,
    MarketplacePolicy,
    PrePurchaseQuestion,
    SellerSuspended,
    daily_limit,
    is_important,
)

DOMAIN = "relay.example.test"
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
POLICY = MarketplacePolicy()
SELLER = Party(
    Side.SELLER, f"sssssssssssssss2@{DOMAIN}", "Shop", ("owner@shop.example",), "owner@shop.example"
)
BUYER = Party(
    Side.BUYER, f"bbbbbbbbbbbbbbb2@{DOMAIN}", "Buyer", ("anna@mail.example",), "anna@mail.example"
)
RECENT_ORDER = PairStanding(latest_order_at=NOW - timedelta(days=1))


def _ctx(
    sender: Side = Side.SELLER,
    *,
    standing: PairStanding = RECENT_ORDER,
    subject: str = "Your order",
    thread: tuple[ThreadEntry, ...] = (),
    quota: QuotaStatus | None = None,
) -> MessageContext:
    """One message of the pair, sent by `sender` and arriving at NOW."""
    frm, to = (SELLER, BUYER) if sender is Side.SELLER else (BUYER, SELLER)
    raw = (
        f"From: {frm.registered[0]}\r\nTo: {to.alias}\r\nSubject: {subject}\r\n\r\nHello\r\n"
    ).encode()
    conversation = Conversation(1, 1, frm, to, thread, standing, quota)
    return MessageContext(frm.registered[0], parse_message(raw), conversation, NOW)


def _buyer_wrote(days_ago: float) -> tuple[ThreadEntry, ...]:
    """A thread answering one buyer message received `days_ago`."""
    sent = NOW - timedelta(days=days_ago)
    return (ThreadEntry("<g1@relay.example.test>", "<b1@mail.example>", Side.BUYER, sent),)


def _ordered(days_ago: float | None, **facts: bool) -> PairStanding:
    at = None if days_ago is None else NOW - timedelta(days=days_ago)
    return PairStanding(latest_order_at=at, **facts)


def _refusal(hits: list[Violation], rule_id: str, code: int, enhanced: str) -> str:
    """Asserts a single refusal by `rule_id` with that reply; returns the reply as sent."""
    assert [v.rule_id for v in hits] == [rule_id]
    reply = hits[0].reply
    assert (reply.code, reply.enhanced) == (code, enhanced)
    sent = str(reply)
    assert rule_id in sent  # the bounce names the rule
    return sent


# -- suspension ---------------------------------------------------------------------------


def test_suspended_seller_is_refused() -> None:
    suspended = _ordered(1, seller_suspended=True)
    _refusal(SellerSuspended().check(_ctx(standing=suspended)), "seller.suspended", 550, "5.7.1")
    assert SellerSuspended().check(_ctx()) == []


def test_buyer_still_reaches_a_suspended_seller() -> None:
    suspended = _ordered(1, seller_suspended=True)
    assert SellerSuspended().check(_ctx(Side.BUYER, standing=suspended)) == []


# -- contact window -----------------------------------------------------------------------

WINDOW = ContactWindow(POLICY)


@pytest.mark.parametrize("days", [0, 29, 30])
def test_seller_may_write_first_within_30_days_of_the_order(days: int) -> None:
    assert WINDOW.check(_ctx(standing=_ordered(days))) == []


def test_seller_may_not_write_first_31_days_after_the_order() -> None:
    sent = _refusal(WINDOW.check(_ctx(standing=_ordered(31))), "window.contact", 550, "5.7.1")
    assert "more than 30 days" in sent
    assert (NOW - timedelta(days=31)).strftime("%Y-%m-%d") in sent


def test_reply_to_a_recent_buyer_message_is_allowed_long_after_the_order() -> None:
    assert WINDOW.check(_ctx(standing=_ordered(60), thread=_buyer_wrote(10))) == []


def test_reply_to_a_buyer_message_31_days_old_is_refused() -> None:
    late = _ctx(standing=_ordered(60), thread=_buyer_wrote(31))
    _refusal(WINDOW.check(late), "window.contact", 550, "5.7.1")


def test_the_sellers_own_earlier_message_opens_no_window() -> None:
    own = (ThreadEntry("<g1@relay.example.test>", "<s1@shop.example>", Side.SELLER, NOW),)
    _refusal(WINDOW.check(_ctx(standing=_ordered(60), thread=own)), "window.contact", 550, "5.7.1")


def test_no_order_and_no_buyer_message_is_refused() -> None:
    sent = _refusal(WINDOW.check(_ctx(standing=_ordered(None))), "window.contact", 550, "5.7.1")
    assert "no order" in sent


def test_contact_window_does_not_bind_the_buyer() -> None:
    assert WINDOW.check(_ctx(Side.BUYER, standing=_ordered(90))) == []


# -- pre-purchase questions ---------------------------------------------------------------


def test_buyer_question_before_any_order_needs_the_sellers_consent() -> None:
    rule = PrePurchaseQuestion()
    refused = rule.check(_ctx(Side.BUYER, standing=_ordered(None)))
    _refusal(refused, "window.pre_purchase", 550, "5.7.1")
    allowed = _ordered(None, pre_purchase_allowed=True)
    assert rule.check(_ctx(Side.BUYER, standing=allowed)) == []


def test_buyer_with_an_order_may_always_write() -> None:
    assert PrePurchaseQuestion().check(_ctx(Side.BUYER, standing=_ordered(400))) == []


# -- opt-out ------------------------------------------------------------------------------

OPTOUT = BuyerOptedOut(POLICY)
OPTED_OUT = _ordered(1, buyer_opted_out=True)


@pytest.mark.parametrize("subject", ["Your order", "Important: your order", "Important update"])
def test_opted_out_buyer_gets_no_plain_message(subject: str) -> None:
    hits = OPTOUT.check(_ctx(standing=OPTED_OUT, subject=subject))
    sent = _refusal(hits, "optout", 550, "5.7.1")
    assert "[Important]" in sent  # the bounce says how to mark an essential message


@pytest.mark.parametrize(
    "subject",
    [
        "[Important] Your parcel is held at customs",
        "Re: [Important] customs",
        "[Additional information required] Your delivery address",
    ],
)
def test_opted_out_buyer_gets_marked_messages(subject: str) -> None:
    assert OPTOUT.check(_ctx(standing=OPTED_OUT, subject=subject)) == []


def test_important_tag_inside_an_encoded_subject() -> None:
    # Japanese mail clients encode the whole Subject, the tag included (RFC 2047).
    encoded = Header("[Important] 税関で荷物が止まっています", "iso-2022-jp").encode()
    assert "[Important]" not in encoded
    assert OPTOUT.check(_ctx(standing=OPTED_OUT, subject=encoded)) == []


def test_opted_out_buyer_gets_replies_to_their_own_messages() -> None:
    assert OPTOUT.check(_ctx(standing=OPTED_OUT, thread=_buyer_wrote(2))) == []


def test_opt_out_concerns_only_opted_out_buyers_and_only_sellers() -> None:
    assert OPTOUT.check(_ctx()) == []
    assert OPTOUT.check(_ctx(Side.BUYER, standing=OPTED_OUT)) == []


def test_only_a_sellers_bracketed_tag_counts_as_important() -> None:
    assert is_important(_ctx(subject="[Important] customs"), POLICY)
    assert not is_important(_ctx(subject="Important: customs"), POLICY)
    assert not is_important(_ctx(Side.BUYER, subject="[Important] customs"), POLICY)


# -- daily quota --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("orders_in_30_days", "limit"), [(0, 600), (3000, 1100), (7, 601), (6, 601), (5, 600)]
)
def test_daily_limit(orders_in_30_days: int, limit: int) -> None:
    assert daily_limit(QuotaStatus(orders_in_30_days, used_today=0), POLICY) == limit


def test_quota_refuses_at_the_limit_until_midnight_utc() -> None:
    rule = DailyQuota(POLICY)
    assert rule.check(_ctx(quota=QuotaStatus(3000, used_today=1099))) == []
    hits = rule.check(_ctx(quota=QuotaStatus(3000, used_today=1100)))
    sent = _refusal(hits, "quota.daily", 452, "4.7.1")  # temporary: the server retries
    assert "1100 messages a day" in sent
    assert "00:00 UTC" in sent
    assert "in about 12 h" in sent  # NOW is noon


def test_permanent_quota_refusal() -> None:
    rule = DailyQuota(MarketplacePolicy(quota_permanent=True))
    _refusal(rule.check(_ctx(quota=QuotaStatus(0, used_today=600))), "quota.daily", 550, "5.7.1")


def test_quota_counts_only_sellers_messages() -> None:
    rule = DailyQuota(POLICY)
    assert rule.check(_ctx(Side.BUYER, quota=QuotaStatus(0, used_today=10_000))) == []
    assert rule.check(_ctx(quota=None)) == []


# -- response times -----------------------------------------------------------------------

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
# The seller is away from 2 h to 26 h after the buyer wrote.
VACATION = Period(T0 + 2 * HOUR, T0 + 26 * HOUR)


def _wait(
    hours: float | None, closed_by: str | None = REPLIED, first_order_at: datetime | None = None
) -> WaitRecord:
    """A wait opened at T0 and closed `hours` later (None: still open)."""
    closed = None if hours is None else T0 + timedelta(hours=hours)
    return WaitRecord(T0, closed, closed_by if closed else None, first_order_at)


def test_counted_seconds_without_vacation() -> None:
    assert counted_seconds(_wait(2), [], T0 + 100 * HOUR) == 2 * 3600
    assert counted_seconds(_wait(None), [], T0 + 5 * HOUR) == 5 * 3600  # open: until now


def test_vacation_time_does_not_count() -> None:
    # Answered 30 h after the buyer wrote, 24 h of them on vacation.
    assert counted_seconds(_wait(30), [VACATION], T0 + 100 * HOUR) == 6 * 3600
    # Answered before the vacation began: nothing is taken off.
    assert counted_seconds(_wait(1), [VACATION], T0 + 100 * HOUR) == 3600
    # Answered 5 h after, 3 of them on vacation.
    assert counted_seconds(_wait(5), [VACATION], T0 + 100 * HOUR) == 2 * 3600
    # An open wait during the vacation: only the time before it counts.
    assert counted_seconds(_wait(None), [VACATION], T0 + 10 * HOUR) == 2 * 3600


def test_vacation_counts_for_orders_placed_before_it_began() -> None:
    before = _wait(30, first_order_at=VACATION.starts - timedelta(days=3))
    assert counted_seconds(before, [VACATION], T0 + 100 * HOUR) == 30 * 3600
    during = _wait(30, first_order_at=VACATION.starts + HOUR)
    assert counted_seconds(during, [VACATION], T0 + 100 * HOUR) == 6 * 3600


def test_summary_shares() -> None:
    waits = [
        _wait(2),  # within 24 h
        _wait(30),  # late
        _wait(None),  # unanswered
        _wait(1, closed_by=NO_RESPONSE_NEEDED),  # leaves the denominators
    ]
    summary = summarise(7, "Shop", waits, [], T0 + 100 * HOUR)
    assert (summary.seller_id, summary.seller_name) == (7, "Shop")
    assert summary.waits == 3
    assert (summary.answered_in_time, summary.answered_late, summary.unanswered) == (1, 1, 1)
    assert summary.no_response_needed == 1
    assert summary.average_seconds == 16 * 3600  # (2 h + 30 h) / 2, unanswered not averaged
    assert summary.share(summary.answered_in_time) == pytest.approx(1 / 3)


def test_summary_with_vacation_turns_a_late_answer_into_a_timely_one() -> None:
    summary = summarise(7, "Shop", [_wait(30)], [VACATION], T0 + 100 * HOUR)
    assert (summary.answered_in_time, summary.answered_late) == (1, 0)
    assert summary.average_seconds == 6 * 3600


def test_summary_of_no_waits() -> None:
    summary = summarise(7, "Shop", [_wait(1, closed_by=NO_RESPONSE_NEEDED)], [], T0)
    assert summary.waits == 0
    assert summary.share(summary.unanswered) is None
    assert summary.average_seconds is None
