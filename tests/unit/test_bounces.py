"""What comes back to a bounce address, told apart without any I/O: RFC 3464 reports read
directly, other servers' shapes through flufl.bounce, auto-replies by their headers."""

from __future__ import annotations

from gateway.pipeline.bounces import (
    REMOTE_REFUSED,
    Returned,
    classify_returned,
    is_hard,
    safe_diagnostic,
)

DOMAIN = "relay.example.test"


def dsn(status: str, action: str = "failed", extra_headers: str = "") -> bytes:
    return (
        "From: MAILER-DAEMON@mx.mail.example\r\n"
        f"{extra_headers}"
        "Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nSorry.\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.mail.example\r\n\r\n"
        f"Final-Recipient: rfc822; anna@mail.example\r\nAction: {action}\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: smtp; 550 {status} <anna@mail.example>: user unknown\r\n"
        "--b--\r\n"
    ).encode()


def test_rfc3464_reports_are_read_for_their_action_and_status() -> None:
    unknown = classify_returned(dsn("5.1.1"))
    assert (unknown.kind, unknown.status, unknown.hard) == (Returned.FAILED, "5.1.1", True)
    assert "user unknown" in unknown.diagnostic
    full = classify_returned(dsn("5.2.2"))
    assert (full.kind, full.hard) == (Returned.FAILED, False)  # a full mailbox: not the address
    gave_up = classify_returned(dsn("4.4.7"))
    assert (gave_up.kind, gave_up.status) == (Returned.FAILED, "5.0.0")
    delayed = classify_returned(dsn("4.2.2", action="delayed"))
    assert delayed.kind is Returned.DELAYED
    # Postfix marks its reports auto-replied: they are reports all the same.
    marked = dsn("5.1.1", extra_headers="Auto-Submitted: auto-replied\r\n")
    assert classify_returned(marked).kind is Returned.FAILED


def test_other_shapes_of_bounce_are_recognised_by_the_maintained_detectors() -> None:
    exim = (
        b"From: Mail Delivery System <Mailer-Daemon@mx.mail.example>\r\n"
        b"X-Failed-Recipients: anna@mail.example\r\n"
        b"Auto-Submitted: auto-replied\r\n"
        b"Subject: Mail delivery failed: returning message to sender\r\n\r\n"
        b"This message was created automatically by mail delivery software.\r\n\r\n"
        b"A message that you sent could not be delivered to one or more of its\r\n"
        b"recipients. This is a permanent error. The following address(es) failed:\r\n\r\n"
        b"  anna@mail.example\r\n    No such user here\r\n"
    )
    report = classify_returned(exim)
    assert (report.kind, report.hard) == (Returned.FAILED, True)
    qmail = (
        b"From: MAILER-DAEMON@mx.mail.example\r\nSubject: failure notice\r\n\r\n"
        b"Hi. This is the qmail-send program at mx.mail.example.\r\n"
        b"I'm afraid I wasn't able to deliver your message to the following addresses.\r\n"
        b"This is a permanent error; I've given up. Sorry it didn't work out.\r\n\r\n"
        b"<anna@mail.example>:\r\nSorry, no mailbox here by that name. (#5.1.1)\r\n\r\n"
        b"--- Below this line is a copy of the message.\r\n\r\nSubject: hi\r\n\r\nhi\r\n"
    )
    assert classify_returned(qmail).kind is Returned.FAILED


def test_auto_replies_are_told_from_reports() -> None:
    vacation = (
        b"From: Anna <anna@mail.example>\r\nAuto-Submitted: auto-replied\r\n"
        b"Subject: Re: your order\r\n\r\nI am away until Monday.\r\n"
    )
    assert classify_returned(vacation).kind is Returned.AUTO_REPLY
    outlook = (
        b"From: Anna <anna@mail.example>\r\nAuto-Submitted: auto-generated\r\n"
        b"Subject: Automatic reply: your order\r\n\r\nI am away.\r\n"
    )
    assert classify_returned(outlook).kind is Returned.AUTO_REPLY
    notification = (
        b"From: shop-notices@mail.example\r\nAuto-Submitted: auto-generated\r\n"
        b"Subject: Your weekly summary\r\n\r\nNumbers.\r\n"
    )
    assert classify_returned(notification).kind is Returned.OTHER
    daemon = (
        b"From: MAILER-DAEMON@mx.mail.example\r\nAuto-Submitted: auto-replied\r\n"
        b"Subject: Warning\r\n\r\nStill trying.\r\n"
    )
    assert classify_returned(daemon).kind is not Returned.AUTO_REPLY


def test_unreadable_bytes_are_other_and_never_raise() -> None:
    for raw in (b"", b"\x00\xff\xfe", b"Content-Type: multipart/report; boundary=\r\n\r\n--\r\n"):
        assert classify_returned(raw).kind in (Returned.OTHER, Returned.DELAYED, Returned.FAILED)


def test_hard_means_the_address_itself() -> None:
    assert [is_hard(c) for c in ("5.1.1", "5.1.10", "5.2.1", "5.2.2", "5.7.1", "4.1.1")] == [
        True,
        True,
        True,
        False,
        False,
        False,
    ]


def test_a_remote_text_that_names_the_recipient_is_not_passed_on() -> None:
    real = "anna.schmidt@mail.example"
    assert safe_diagnostic("550 5.1.1 <anna.schmidt@mail.example> unknown", real, DOMAIN, "x") == (
        "550 5.1.1 <the recipient> unknown"
    )
    assert safe_diagnostic("550 5.1.1 mailbox anna.schmidt unknown", real, DOMAIN, "x") == "x"
    assert safe_diagnostic("552 5.2.2 over quota", real, DOMAIN, "x") == "552 5.2.2 over quota"
    assert safe_diagnostic("", real, DOMAIN, REMOTE_REFUSED) == REMOTE_REFUSED
