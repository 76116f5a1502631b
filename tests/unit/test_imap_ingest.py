"""The pure parts of IMAP ingest: its settings, the envelope read from the header, the
Authentication-Results of trusted servers, and who is told of a refusal."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.core import status
from gateway.core.model import ArchiveEntry, Direction, Violation
from gateway.imap.envelope import read_envelope
from gateway.intake.build import refusal_notices, unrouted
from gateway.intake.model import Outcome, Received
from gateway.obs.log import configure_logging
from gateway.pipeline.authresults import trusted_checks
from gateway.settings import ConfigError, load_settings

SOURCE = """
[[imap.sources]]
name = "catchall"
host = "imap.example.test"
port = 993
tls = "implicit"
user = "catchall@relay.example.test"
{finish}
"""
DOMAIN = "relay.example.test"
NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


def config(tmp_path: Path, finish: str = 'move_to = "Processed"') -> Path:
    path = tmp_path / "gw.toml"
    path.write_text(SOURCE.format(finish=finish))
    return path


def test_the_password_comes_from_the_environment_and_is_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BSM_IMAP__PASSWORDS__CATCHALL", "s3cret-imap")
    settings = load_settings(config(tmp_path))
    [source] = settings.imap.sources
    assert settings.imap.password(source) == "s3cret-imap"
    assert "s3cret-imap" not in repr(settings) and "s3cret-imap" not in str(settings.imap)


def test_a_source_without_its_password_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(config(tmp_path))
    assert "BSM_IMAP__PASSWORDS__CATCHALL" in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("finish", ['move_to = "Done"\nflag = true', ""])
def test_a_source_moves_or_flags_one_of_the_two(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, finish: str
) -> None:
    monkeypatch.setenv("BSM_IMAP__PASSWORDS__CATCHALL", "x")
    with pytest.raises(ConfigError, match="either move_to"):
        load_settings(config(tmp_path, finish))


HEADERS = ["Delivered-To", "X-Original-To", "To"]


def test_the_alias_comes_from_the_first_header_that_names_one() -> None:
    raw = (
        b"Return-Path: <Owner@Shop.example>\r\n"
        b"Delivered-To: catchall@relay.example.test\r\n"
        b"X-Original-To: b-abc@relay.example.test\r\n"
        b"To: Someone <b-abc@relay.example.test>, b-def@relay.example.test\r\n"
        b"Message-ID: <m1@shop.example>\r\n\r\nhello\r\n"
    )
    envelope = read_envelope(raw, DOMAIN, HEADERS, "Return-Path", "catchall@relay.example.test")
    # Delivered-To names only the mailbox itself: the next header is asked.
    assert envelope.recipients == ("b-abc@relay.example.test",)
    assert envelope.sender == "Owner@Shop.example"
    assert envelope.message_id == "<m1@shop.example>"
    by_to = read_envelope(raw, DOMAIN, ["To"], "Return-Path")
    assert by_to.recipients == ("b-abc@relay.example.test", "b-def@relay.example.test")


@pytest.mark.parametrize(
    ("header", "sender"),
    [(b"Return-Path: <>\r\n", ""), (b"", None), (b"Return-Path: <a@b.example>\r\n", "a@b.example")],
)
def test_the_sender_is_the_return_path(header: bytes, sender: str | None) -> None:
    raw = header + b"To: b-x@relay.example.test\r\n\r\nhi\r\n"
    assert read_envelope(raw, DOMAIN, HEADERS, "Return-Path").sender == sender


def test_no_alias_in_any_header_is_an_empty_envelope() -> None:
    raw = b"To: someone@elsewhere.example\r\n\r\nhi\r\n"
    assert read_envelope(raw, DOMAIN, HEADERS, "Return-Path").recipients == ()


def test_only_trusted_servers_results_count() -> None:
    raw = (
        b"Authentication-Results: evil.example; spf=pass smtp.mailfrom=shop.example\r\n"
        b"Authentication-Results: mx.market.example;\r\n"
        b"\tspf=pass smtp.mailfrom=owner@shop.example;\r\n"
        b"\tdkim=fail header.d=shop.example header.s=s1;\r\n"
        b"\tdmarc=pass header.from=shop.example\r\n"
        b"From: owner@shop.example\r\n\r\nbody\r\n"
    )
    checks = trusted_checks(raw, ("MX.market.example",))
    assert [(c.method, c.result, c.domain) for c in checks] == [
        ("spf", "pass", "shop.example"),
        ("dkim", "fail", "shop.example"),
    ]
    assert trusted_checks(raw, ()) == []
    assert trusted_checks(b"Authentication-Results: ;;;\r\n\r\n", ("x",)) == []


def _received() -> Received:
    raw = b"From: owner@shop.example\r\nTo: b-x@relay.example.test\r\n\r\nhello\r\n"
    return Received(
        envelope_from="owner@shop.example",
        raw=raw,
        parsed=None,
        received_at=NOW,
        session_id="s1",
        alias_domain=DOMAIN,
    )


def _refused(rcpt: str, rule_id: str, tell: str | None) -> Outcome:
    reply = status.UNKNOWN_ALIAS if rule_id.startswith("sender.") else status.UNPROCESSABLE
    entry = ArchiveEntry(
        direction=Direction.SELLER_TO_BUYER,
        pair_id=7,
        envelope_from="owner@shop.example",
        recipient=rcpt,
        received_at=NOW,
        raw_received=b"",
        raw_delivered=None,
        gateway_message_id="<g@relay.example.test>",
        original_message_id=None,
        reply=reply,
        violations=(Violation(rule_id, reply),),
    )
    return Outcome(rcpt, 7, entry, tell=tell)


def test_a_refusal_is_told_to_the_partys_known_address_naming_only_aliases() -> None:
    received = _received()
    outcomes = [
        _refused("b-x@relay.example.test", "content.link", "registered@shop.example"),
        _refused("b-y@relay.example.test", "seller.suspended", "registered@shop.example"),
    ]
    [notice] = refusal_notices(received, outcomes)
    assert notice.recipient == "registered@shop.example"  # not the envelope's sender
    assert notice.delivery is not None and notice.delivery.envelope_from == ""
    text = (notice.raw_delivered or b"").decode()
    assert "b-x@relay.example.test" in text and "b-y@relay.example.test" in text


def test_no_notice_where_the_sender_is_not_proven_or_unknown() -> None:
    received = _received()
    forged = _refused("b-x@relay.example.test", "sender.header_from", "registered@shop.example")
    untold = _refused("b-x@relay.example.test", "content.link", None)
    stranger = unrouted(
        received, "b-z@relay.example.test", Violation("alias", status.UNKNOWN_ALIAS)
    )
    assert stranger.entry.direction is Direction.UNROUTED and not stranger.entry.accepted
    assert refusal_notices(received, [forged, untold, stranger]) == []
    assert refusal_notices(received, [replace(forged, tell=None)]) == []


def test_only_the_topmost_trace_field_names_the_alias() -> None:
    raw = (
        b"Delivered-To: b-real@relay.example.test\r\n"
        b"Delivered-To: b-planted@relay.example.test\r\n"  # came with the message
        b"\r\nhi\r\n"
    )
    assert read_envelope(raw, DOMAIN, HEADERS, "Return-Path").recipients == (
        "b-real@relay.example.test",
    )


def test_a_sender_or_message_id_smtp_would_not_take_is_none() -> None:
    long_id = "<" + "x" * 1200 + "@client.example>"
    raw = f"Return-Path: <{'a' * 80}@b.example>\r\nMessage-ID: {long_id}\r\n\r\nhi\r\n"
    envelope = read_envelope(raw.encode(), DOMAIN, HEADERS, "Return-Path")
    assert (envelope.sender, envelope.message_id) == (None, None)


def test_of_a_trusted_server_only_its_topmost_field_counts() -> None:
    raw = (
        b"Authentication-Results: mx.market.example; spf=fail smtp.mailfrom=shop.example\r\n"
        b"Received: from sender by mx.market.example\r\n"
        b"Authentication-Results: mx.market.example; spf=pass smtp.mailfrom=shop.example\r\n"
        b"\r\nbody\r\n"
    )
    [check] = trusted_checks(raw, ("mx.market.example",))
    assert (check.method, check.result) == ("spf", "fail")


def test_a_temporary_refusal_told_by_dsn_is_a_failed_action() -> None:
    received = _received()
    outcome = _refused("b-x@relay.example.test", "quota.daily", "registered@shop.example")
    entry = replace(outcome.entry, reply=status.over_quota(600, 5, False))
    [notice] = refusal_notices(received, [replace(outcome, entry=entry)])
    text = (notice.raw_delivered or b"").decode()
    assert "Status: 5.7.1" in text and "Status: 4." not in text


def test_a_source_moves_to_another_folder_than_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BSM_IMAP__PASSWORDS__CATCHALL", "x")
    with pytest.raises(ConfigError, match="other folders"):
        load_settings(config(tmp_path, 'move_to = "INBOX"'))


def test_the_imap_client_never_logs_what_it_sends_or_receives() -> None:
    configure_logging("debug", "json")
    # aioimaplib writes every line of the session (messages, the LOGIN) at debug level.
    assert logging.getLogger("aioimaplib.aioimaplib").getEffectiveLevel() >= logging.WARNING
    configure_logging("info", "json")
