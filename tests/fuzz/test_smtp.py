"""SMTP dialogues from hypothesis against a running gateway over real sockets: commands in
any order, pipelined, with bare CR or LF line ends, long lines, NULs and 8-bit bytes, and
messages of any shape. Every reply is well formed, none is the internal error's 451, every
250 that says a message is stored names a record the archive holds, and the gateway still
takes mail at the end. The seller's day fills up on the way (600 messages): those are
refused 452, never with a 5xx."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from gateway.storage.schema import Message
from tests.fuzz.scale import cases, time_limit
from tests.support.gateway import Parties, RunningGateway, running_gateway
from tests.support.mail import send, text_message

REPLY_LINE = re.compile(rb"^[2-5]\d\d[ -]")
STORED = re.compile(rb"^250 2\.0\.0 Message accepted for delivery as (\d+)")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningGateway, Parties]]:
    folder = tmp_path_factory.mktemp("smtp-fuzz")
    # One gateway for every case: idle sessions end fast, refusals are not slowed.
    with running_gateway(
        folder,
        f"sqlite:///{folder / 'gateway.db'}",
        smtp_config="idle_timeout = 5\nrcpt_refusal_delay = 0\nmax_sessions_per_client = 1000",
    ) as gw:
        yield gw, gw.register()


def _dialogue_parts(parties: Parties) -> st.SearchStrategy[bytes]:
    addresses = st.sampled_from(
        [
            parties.seller_mailbox,
            parties.buyer_alias,
            parties.seller_alias,
            "",
            "stranger@elsewhere.example",
            f"bounce-{'a' * 16}-1-{'b' * 10}@relay.example.test",
            "not an address",
            "a@b@c",
        ]
    )
    noise = st.binary(max_size=40)
    verbs = st.sampled_from(
        [b"EHLO", b"HELO", b"MAIL", b"RCPT", b"DATA", b"RSET", b"NOOP", b"VRFY", b"BDAT",
         b"STARTTLS", b"AUTH PLAIN", b"XCLIENT", b"HELP", b"", b"ehlo", b"mail from:"]
    )  # fmt: skip
    ends = st.sampled_from([b"\r\n", b"\n", b"\r", b"\r\r\n", b"\x00\r\n"])
    mail = addresses.map(lambda a: f"MAIL FROM:<{a}>".encode())
    rcpt = addresses.map(lambda a: f"RCPT TO:<{a}>".encode())
    free = st.builds(lambda v, n: v + b" " + n, verbs, noise)
    long_line = st.integers(500, 2000).map(lambda n: b"NOOP " + b"x" * n)
    body = st.builds(
        lambda head, text, end: b"DATA\r\n" + head + b"\r\n\r\n" + text + end,
        st.sampled_from(
            [
                f"From: {parties.seller_mailbox}\r\nSubject: fuzz".encode(),
                f"From: {parties.seller_mailbox}\r\nContent-Type: multipart/mixed; "
                "boundary=x".encode(),
                b"Subject: \xff\xfe",
                b"",
                f"From: {parties.seller_mailbox}\r\nSubject: =?utf-8?b?w6k=?=".encode(),
            ]
        ),
        st.binary(max_size=300),
        st.sampled_from([b"\r\n.\r\n", b"\n.\n", b"\r\n..\r\n.\r\n", b"\r\n"]),
    )
    # A whole transaction the gateway takes, around a body of any bytes.
    seller, alias = parties.seller_mailbox.encode(), parties.buyer_alias.encode()
    transaction = body.map(
        lambda data: (
            b"EHLO fuzz.example\r\nMAIL FROM:<"
            + seller
            + b">\r\nRCPT TO:<"
            + alias
            + b">\r\n"
            + data
        )
    )
    line = st.one_of(
        st.builds(lambda c, e: c + e, st.one_of(mail, rcpt, free, long_line), ends),
        st.just(b"EHLO fuzz.example\r\n"),
        body,
        transaction,
    )
    return st.lists(line, min_size=1, max_size=8).map(b"".join)


def _converse(port: int, dialogue: bytes) -> list[bytes]:
    """Send the dialogue at once (pipelined), then end any DATA and QUIT; the reply lines."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conversation:
        conversation.sendall(dialogue + b"\r\n.\r\nQUIT\r\n")
        received = b""
        while True:
            try:
                chunk = conversation.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            received += chunk
    return [line for line in received.split(b"\r\n") if line]


@pytest.mark.timeout(time_limit(300))
def test_no_dialogue_breaks_the_gateway_or_gets_a_250_for_nothing_stored(
    gateway: tuple[RunningGateway, Parties],
) -> None:
    gw, parties = gateway
    stored: list[int] = []

    @settings(
        max_examples=cases(8_000),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(_dialogue_parts(parties))
    def one(dialogue: bytes) -> None:
        lines = _converse(gw.port, dialogue)
        assert lines, "no greeting"
        for line in lines:
            assert REPLY_LINE.match(line), line
            assert not line.startswith(b"451 4.3.0"), line  # an internal error
            if b"quota.daily" in line:  # a transient refusal (the day full) is never a 5xx
                assert line.startswith((b"452", b"450", b"451")), line
            found = STORED.match(line)
            if found:
                stored.append(int(found.group(1)))

    one()
    with gw.gateway.database.transaction() as session:
        archived = set(session.scalars(select(Message.id).where(Message.id.in_(stored))))
    assert set(stored) <= archived, "a 250 named a record that is not stored"
    # The seller's day is full by now (452, as it should be): the buyer writes instead.
    message = text_message(sender=parties.buyer_address, to=parties.seller_alias)
    assert send(gw.port, parties.buyer_address, [parties.seller_alias], message) == {}
    print(f"\n{len(stored)} messages stored and found in the archive")
