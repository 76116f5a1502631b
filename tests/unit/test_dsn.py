from __future__ import annotations

import email
from datetime import UTC, datetime
from email.policy import default

from gateway.pipeline.dsn import FailedRecipient, build_dsn, header_block, scrub_addresses

DOMAIN = "relay.example.test"


def test_scrub_keeps_aliases_and_hides_real_addresses() -> None:
    text = "550 5.1.1 <Buyer.Real@Mail.example>: unknown; see abc@relay.example.test"
    assert scrub_addresses(text, DOMAIN, "the recipient") == (
        "550 5.1.1 <the recipient>: unknown; see abc@relay.example.test"
    )


def test_header_block_of_crlf_and_lf_messages() -> None:
    assert header_block(b"A: 1\r\nB: 2\r\n\r\nbody") == b"A: 1\r\nB: 2\r\n"
    assert header_block(b"A: 1\n\nbody") == b"A: 1\r\n"


def test_dsn_is_an_rfc3464_report() -> None:
    now = datetime(2026, 11, 22, tzinfo=UTC)
    raw = build_dsn(
        alias_domain=DOMAIN,
        to="seller@shop.example",
        message_id="<dsn@relay.example.test>",
        arrival=now,
        now=now,
        original_headers=b"From: seller@shop.example\r\nSubject: hi\r\n",
        failed=[FailedRecipient("abcdefghijklmnop@relay.example.test", "5.1.1", "unknown")],
    )
    report = email.message_from_bytes(raw, policy=default)
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    assert report["Auto-Submitted"] == "auto-replied"
    kinds = [p.get_content_type() for p in report.iter_parts()]  # type: ignore[attr-defined]
    assert kinds == ["text/plain", "message/delivery-status", "text/rfc822-headers"]
    per_message, per_recipient = report.get_payload()[1].get_payload()
    assert per_message["Reporting-MTA"] == f"dns; {DOMAIN}"
    assert per_recipient["Final-Recipient"] == "rfc822; abcdefghijklmnop@relay.example.test"
    assert per_recipient["Action"] == "failed"
    assert per_recipient["Status"] == "5.1.1"
    assert b"\r\n" in raw and b"\r\r" not in raw
