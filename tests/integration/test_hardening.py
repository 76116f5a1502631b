"""The SMTP surface against hostile clients, over real sockets."""

from __future__ import annotations

import re
import smtplib
import socket
import ssl
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from gateway.core.throttle import backoff
from tests.support.archive import archived
from tests.support.gateway import (
    RunningGateway,
    client_tls,
    running_gateway,
    smarthost_gateway,
    submission_session,
    wait_for,
)
from tests.support.mail import send, text_message, wire_bytes

# Every way a bare CR or LF has been used to fake the end of DATA (SMTP smuggling).
FAKE_ENDS = [
    b"\n.\n",
    b"\n.\r",
    b"\r.\n",
    b"\r.\r",
    b"\n.\r\n",
    b"\r.\r\n",
    b"\r\n\x00.\r\n",
    b"\r\n.\x00\r\n",
    b"\r\n.\n",
    b"\r\n.\r",
]


def _session(port: int, script: bytes) -> bytes:
    """Send raw bytes as one client would, all at once; return every reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(script)
        replies = b""
        while chunk := connection.recv(65536):
            replies += chunk
    return replies


@pytest.mark.parametrize("fake_end", FAKE_ENDS, ids=repr)
def test_smuggled_second_message_is_never_delivered(
    tmp_path: Path, db_url: str, fake_end: bytes
) -> None:
    with smarthost_gateway(tmp_path, db_url) as (sink, gw):
        parties = gw.register()
        seller, alias = parties.seller_mailbox.encode(), parties.buyer_alias.encode()
        headers = b"From: %s\r\nTo: %s\r\n" % (seller, alias)
        hidden = (
            b"MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n%sSubject: smuggled\r\n\r\nhidden\r\n"
            % (seller, alias, headers)
        )
        script = (
            b"EHLO client.example\r\nMAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n" % (seller, alias)
            + headers
            + b"Subject: visible\r\n\r\nfirst"
            + fake_end
            + hidden
            + b"\r\n.\r\nQUIT\r\n"
        )
        replies = _session(gw.port, script)
        # One DATA answered: a 250 for one message, or a refusal; never two 250s for DATA.
        assert replies.count(b"250 2.0.0 Message accepted") <= 1
        wait_for(lambda: _archived(gw) >= 1)
        if b"250 2.0.0 Message accepted" in replies:
            wait_for(lambda: sink.received)
        assert len(sink.received) <= 1
        for got in sink.received:
            assert b"Subject: visible" in got.content
            assert b"\nSubject: smuggled" not in got.content.split(b"\r\n\r\n", 1)[0]
            _assert_only_crlf(got.content)
        for raw in _archived_blobs(gw):
            _assert_only_crlf(raw)


def _reply(connection: socket.socket | ssl.SSLSocket) -> bytes:
    """Read one whole reply (the last line has a space after the code), byte by byte, so
    that nothing after it is consumed before TLS starts."""
    data = b""
    while not re.search(rb"(^|\r\n)\d{3} [^\r\n]*\r\n$", data):
        chunk = connection.recv(1)
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    return data


@pytest.mark.parametrize("listener", ["mx", "submission"])
def test_commands_pipelined_after_starttls_are_discarded(gw: RunningGateway, listener: str) -> None:
    """RFC 3207 4.2 (CVE-2011-0411): plaintext sent after STARTTLS, before the handshake,
    must not be executed inside the TLS session."""
    port = gw.port if listener == "mx" else gw.submission_port
    with socket.create_connection(("127.0.0.1", port), timeout=10) as plain:
        assert _reply(plain).startswith(b"220")
        plain.sendall(b"EHLO client.example\r\n")
        assert b"STARTTLS" in _reply(plain)
        plain.sendall(b"STARTTLS\r\nVRFY postmaster\r\nQUIT\r\n")
        assert _reply(plain).startswith(b"220")
        with client_tls().wrap_socket(plain) as tls:
            tls.settimeout(1)
            with pytest.raises(TimeoutError):
                tls.recv(1)  # the injected VRFY and QUIT got no answer, and did not close
            tls.settimeout(10)
            tls.sendall(b"NOOP\r\n")
            assert _reply(tls).startswith(b"250")


def test_starttls_inside_tls_is_refused(gw: RunningGateway) -> None:
    with smtplib.SMTP("127.0.0.1", gw.port, timeout=10) as client:
        client.starttls(context=client_tls())
        client.ehlo()
        assert client.docmd("STARTTLS") == (503, b"5.5.1 TLS is already active")
        assert client.noop()[0] == 250


def test_a_handshake_never_made_ends_the_session_and_frees_its_slot(
    tmp_path: Path, db_url: str
) -> None:
    """A client that asks for STARTTLS and sends no handshake is closed at the idle timeout,
    and its session slot is free again: such clients cannot use up a client's slots."""
    config = "idle_timeout = 0.5\nmax_sessions_per_client = 2"
    with running_gateway(tmp_path, db_url, smtp_config=config) as gw:
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as plain:
                assert _reply(plain).startswith(b"220")
                # What follows STARTTLS is plaintext the handshake never reads.
                plain.sendall(b"EHLO client.example\r\nSTARTTLS\r\nEHLO again\r\nSTARTTLS\r\n")
                replies = b""
                while chunk := plain.recv(65536):
                    replies += chunk
                assert replies.endswith(b"220 Ready to start TLS\r\n"), replies
        assert _greets(gw.port)


def _assert_only_crlf(content: bytes) -> None:
    stripped = content.replace(b"\r\n", b"")
    assert b"\r" not in stripped and b"\n" not in stripped


def _archived(gw: RunningGateway) -> int:
    return len(_archived_blobs(gw))


def _archived_blobs(gw: RunningGateway) -> list[bytes]:
    return [
        raw
        for record in archived(gw.gateway.database)
        for raw in (record.raw_received, record.raw_delivered)
        if raw is not None
    ]


@pytest.mark.parametrize(
    "from_value",
    [
        "{seller})<intruder@evil.example>",
        "{seller} <intruder@evil.example>",
        "{seller}, intruder@evil.example",
    ],
)
def test_ambiguous_from_is_refused(gw: RunningGateway, from_value: str) -> None:
    parties = gw.register()
    raw = (
        f"From: {from_value.format(seller=parties.seller_mailbox)}\r\n"
        f"To: {parties.buyer_alias}\r\nSubject: hi\r\n\r\nhello\r\n"
    ).encode()
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(gw.port, parties.seller_mailbox, [parties.buyer_alias], raw)
    assert refused.value.smtp_code == 550
    assert refused.value.smtp_error.startswith(b"5.6.0")


def test_two_from_fields_are_refused(gw: RunningGateway) -> None:
    parties = gw.register()
    raw = (
        f"From: {parties.seller_mailbox}\r\nFrom: intruder@evil.example\r\n"
        f"To: {parties.buyer_alias}\r\nSubject: hi\r\n\r\nhello\r\n"
    ).encode()
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(gw.port, parties.seller_mailbox, [parties.buyer_alias], raw)
    assert (refused.value.smtp_code, refused.value.smtp_error[:5]) == (550, b"5.6.0")


@pytest.mark.parametrize(
    "rcpt",
    [
        "user@other.example",
        '"{alias}"@other.example',
        "{local}%other.example@relay.example.test",
        "@relay.example.test,@other.example:user@other.example",
        "user@[127.0.0.1]",
        "user@[IPv6:::1]",
        "{alias}.other.example",
    ],
)
@pytest.mark.parametrize("authenticated", [False, True], ids=["mx", "submission"])
def test_not_an_open_relay(gw: RunningGateway, rcpt: str, authenticated: bool) -> None:
    parties = gw.register()
    target = rcpt.format(alias=parties.buyer_alias, local=parties.buyer_alias.split("@")[0])
    with ExitStack() as stack:
        if authenticated:
            login = gw.gateway.credentials.add(parties.seller_id)
            client = stack.enter_context(submission_session(gw, login))
        else:
            client = stack.enter_context(smtplib.SMTP("127.0.0.1", gw.port, timeout=30))
            client.ehlo()
        assert client.mail(parties.seller_mailbox)[0] == 250
        code, _ = client.rcpt(target)
    assert 500 <= code < 600


def test_recipients_per_transaction_are_limited(tmp_path: Path, db_url: str) -> None:
    with running_gateway(tmp_path, db_url, smtp_config="max_recipients = 3") as gw:
        parties = gw.register()
        with smtplib.SMTP("127.0.0.1", gw.port, timeout=30) as client:
            client.ehlo()
            client.mail(parties.seller_mailbox)
            codes = [client.rcpt(parties.buyer_alias)[0] for _ in range(3)]
            code, text = client.rcpt(parties.buyer_alias)
        assert codes == [250, 250, 250]
        assert (code, text[:5]) == (452, b"4.5.3")


def test_sessions_per_client_are_limited(tmp_path: Path, db_url: str) -> None:
    with running_gateway(tmp_path, db_url, smtp_config="max_sessions_per_client = 2") as gw:
        held = [smtplib.SMTP("127.0.0.1", gw.port, timeout=30) for _ in range(2)]
        try:
            with pytest.raises(smtplib.SMTPConnectError) as refused:
                smtplib.SMTP("127.0.0.1", gw.port, timeout=30)
            assert refused.value.smtp_code == 421
        finally:
            for client in held:
                client.close()
        # A slot freed is a slot to use again.
        wait_for(lambda: _greets(gw.port))


def _greets(port: int) -> bool:
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=5) as client:
            return client.noop()[0] == 250
    except smtplib.SMTPConnectError:
        return False


def test_commands_per_session_are_limited(tmp_path: Path, db_url: str) -> None:
    with running_gateway(tmp_path, db_url, smtp_config="max_commands = 10") as gw:
        replies = _session(gw.port, b"NOOP\r\n" * 12).splitlines()
    assert replies[0].startswith(b"220 ")
    assert [r[:3] for r in replies[1:]] == [b"250"] * 10 + [b"421"]  # then the server hangs up


def test_local_part_longer_than_64_is_refused(gw: RunningGateway) -> None:
    parties = gw.register()
    with smtplib.SMTP("127.0.0.1", gw.port, timeout=30) as client:
        client.ehlo()
        client.mail(parties.seller_mailbox)
        code, _ = client.rcpt("a" * 65 + "@relay.example.test")
    assert 500 <= code < 600


def _nested(depth: int) -> str:
    """A message whose parts are nested `depth` levels deep."""
    body = "Content-Type: text/plain\r\n\r\ninnermost\r\n"
    for level in range(depth - 1, 0, -1):
        body = (
            f'Content-Type: multipart/mixed; boundary="b{level}"\r\n\r\n'
            f"--b{level}\r\n{body}--b{level}--\r\n"
        )
    return body


def test_mime_nesting_is_limited(tmp_path: Path, db_url: str) -> None:
    with running_gateway(tmp_path, db_url, smtp_config="max_mime_depth = 10") as gw:
        parties = gw.register()
        head = f"From: {parties.seller_mailbox}\r\nTo: {parties.buyer_alias}\r\nSubject: deep\r\n"

        deep = (head + "MIME-Version: 1.0\r\n" + _nested(11)).encode()
        with pytest.raises(smtplib.SMTPDataError) as refused:
            send(gw.port, parties.seller_mailbox, [parties.buyer_alias], deep)
        assert (refused.value.smtp_code, refused.value.smtp_error[:5]) == (554, b"5.6.0")

        shallow = (head + "MIME-Version: 1.0\r\n" + _nested(10)).encode()
        assert send(gw.port, parties.seller_mailbox, [parties.buyer_alias], shallow) == {}


def test_bare_line_ends_are_stored_and_sent_as_crlf(tmp_path: Path, db_url: str) -> None:
    with smarthost_gateway(tmp_path, db_url) as (sink, gw):
        parties = gw.register()
        message = text_message(sender=parties.seller_mailbox, to=parties.buyer_alias)
        raw = message.as_bytes().replace(b"\r\n", b"\n") + b"line\rwith a bare CR\n"
        send(gw.port, parties.seller_mailbox, [parties.buyer_alias], raw)
        wait_for(lambda: sink.received)
        _assert_only_crlf(sink.received[0].content)
        for blob in _archived_blobs(gw):
            _assert_only_crlf(blob)


def test_alias_guessing_is_slowed_over_sessions_and_replicas_but_answered_the_same(
    tmp_path: Path, db_url: str
) -> None:
    """A guesser's refusals count over all its sessions on every replica: reconnecting, or
    going to another replica behind the load balancer, starts nothing over."""
    base, free = 0.05, 3
    config = f"rcpt_refusal_delay = {base}\nrcpt_refusal_free = {free}"
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    guesses = (f"{n:016d}@relay.example.test".replace("0", "a") for n in range(100))
    took: list[float] = []
    with (
        running_gateway(tmp_path / "a", db_url, smtp_config=config) as first,
        running_gateway(tmp_path / "b", db_url, smtp_config=config) as second,
    ):
        parties = first.register()
        for gw, count in ((first, 3), (first, 3), (second, 2)):
            with smtplib.SMTP("127.0.0.1", gw.port, timeout=30) as client:
                client.ehlo()
                client.mail(parties.seller_mailbox)
                for _ in range(count):
                    started = time.monotonic()
                    code, text = client.rcpt(next(guesses))
                    took.append(time.monotonic() - started)
                    assert (code, text[:5]) == (550, b"5.1.1")
                assert client.rcpt(parties.buyer_alias)[0] == 250  # the session stays usable
    # Each refusal past the free ones waits at least its delay, doubling from `base`: a
    # lower bound, which a slow machine only exceeds. Counted per session, the second
    # session's refusals and the other replica's would all have been free.
    for number, seconds in enumerate(took, start=1):
        assert seconds >= backoff(number, free, base), (number, took)
    assert sum(took[free:]) >= base * (2 ** (len(took) - free) - 1)


def test_an_idle_session_is_told_and_closed(tmp_path: Path, db_url: str) -> None:
    with (
        running_gateway(tmp_path, db_url, smtp_config="idle_timeout = 0.5") as gw,
        socket.create_connection(("127.0.0.1", gw.port), timeout=10) as connection,
    ):
        assert _reply(connection).startswith(b"220")
        connection.sendall(b"EHLO client.example\r\n")
        _reply(connection)
        assert _reply(connection).startswith(b"421 4.4.2")  # nothing sent for 0.5 s
        assert connection.recv(1) == b""


def test_overlong_lines_are_refused(gw: RunningGateway) -> None:
    parties = gw.register()
    with smtplib.SMTP("127.0.0.1", gw.port, timeout=30) as client:
        client.ehlo()
        code, text = client.docmd("NOOP", "x" * 600)  # RFC 5321 4.5.3.1.4: 512 octets
        assert (code, text[:5]) == (500, b"5.5.2")
        client.mail(parties.seller_mailbox)
        client.rcpt(parties.buyer_alias)
        mail = wire_bytes(text_message(sender=parties.seller_mailbox, to=parties.buyer_alias))
        code, text = client.data(mail.replace(b"\r\n\r\n", b"\r\n\r\n" + b"y" * 70_000 + b"\r\n"))
        assert (code, text[:5]) == (500, b"5.5.2")
