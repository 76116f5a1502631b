"""Real-world mail through the gateway: every corpus message, seller -> buyer over SMTP.

Each message gets the registered seller mailbox as its only From (every other byte kept) and
is sent with smtplib to the buyer alias. It must be either accepted and delivered, with no
real address of the original in the delivered headers and its MIME tree intact, or refused
with a 5xx that says why; never a 4xx, never a dropped connection; and either way archived.

`pytest -s` prints the delivered/refused summary at the end of the module.
"""

from __future__ import annotations

import re
import smtplib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway.storage.archive import ArchivedMessage
from gateway.storage.schema import Message
from tests.support.archive import archived
from tests.support.corpus import (
    MISSING,
    Leaf,
    corpus_dir,
    corpus_files,
    header_addresses,
    iter_headers,
    mime_tree,
    parse,
    replace_from,
    require_corpus,
    to_wire,
)
from tests.support.gateway import Parties, RunningGateway, running_gateway, wait_for

pytestmark = pytest.mark.corpus

ALIAS_DOMAIN = "relay.example.test"
SELLER_MAILBOX = "owner@sakura-shop.example"
BUYER_ADDRESS = "kim.buyer@buyer-mail.example"
# Headers of the original whose addresses must not reach the buyer.
REVEALING_HEADERS = ("From", "Sender", "Reply-To", "Return-Path", "Received", "Cc")
# Headers naming the sending party: the leak guard replaces these addresses in inline text.
SENDER_HEADERS = ("From", "Sender", "Reply-To", "Return-Path")

_FILES = corpus_files()


@dataclass
class Outcome:
    code: int
    text: str


RESULTS: dict[str, Outcome] = {}


@dataclass
class CorpusGateway:
    gw: RunningGateway
    parties: Parties
    claimed: set[str]  # maildir files already matched to a message


@pytest.fixture(scope="module")
def corpus_gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CorpusGateway]:
    """One SQLite-backed gateway for the whole corpus (141 messages on both stores would
    only repeat what the storage tests cover)."""
    folder = tmp_path_factory.mktemp("corpus")
    with running_gateway(folder, f"sqlite:///{folder / 'gateway.db'}") as gw:
        parties = gw.register(seller=SELLER_MAILBOX, buyer=BUYER_ADDRESS)
        yield CorpusGateway(gw, parties, set())


def _send(port: int, mail_from: str, rcpt: str, data: bytes) -> tuple[int, str]:
    """Send as a seller's MTA would; the final reply as (code, text)."""
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
            refused = client.sendmail(mail_from, [rcpt], data)
    except smtplib.SMTPRecipientsRefused as error:
        code, text = error.recipients[rcpt]
        return code, text.decode("utf-8", "replace")
    except smtplib.SMTPResponseException as error:
        return error.smtp_code, error.smtp_error.decode("utf-8", "replace")
    assert refused == {}
    return 250, ""


def _archive_rows(gw: RunningGateway, after: int) -> list[ArchivedMessage]:
    return archived(gw.gateway.database, Message.id > after)


def _last_message_id(gw: RunningGateway) -> int:
    with gw.gateway.database.transaction() as session:
        return session.scalar(select(func.max(Message.id))) or 0


def _find_delivered(cgw: CorpusGateway, gateway_message_id: str) -> Path:
    """The maildir file carrying this gateway Message-ID (waits for the worker)."""
    assert cgw.gw.maildir is not None
    new = cgw.gw.maildir / "new"

    def probe() -> Path | None:
        for path in new.iterdir():
            if path.name in cgw.claimed:
                continue
            if _message_id(path) == gateway_message_id:
                return path
        return None

    path: Path = wait_for(probe, timeout=30)
    cgw.claimed.add(path.name)
    return path


def _replace_addresses(text: str, addresses: set[str], alias: str) -> str:
    for address in sorted(addresses, key=len, reverse=True):
        text = re.sub(re.escape(address), alias, text, flags=re.IGNORECASE)
    return text


def _assert_same_leaf(
    index: int, sent: Leaf, got: Leaf, sender_addresses: set[str], alias: str
) -> None:
    where = f"part {index} ({sent.content_type})"
    if sent.payload == got.payload:
        return
    assert sent.payload is not None and got.payload is not None, f"{where}: payload lost"
    if sent.content_type.startswith(("multipart/", "message/")):
        # A container the parser could not split (no boundary found): its body is opaque
        # text. The stdlib keeps the line break that belongs to the next delimiter in it
        # and writes it back with one more, so only trailing line breaks may differ.
        assert sent.payload.rstrip(b"\r\n") == got.payload.rstrip(b"\r\n"), (
            f"{where}: the text of an unparseable container changed"
        )
        return
    # Only inline text may differ: the leak guard put the seller alias where the sending
    # party's own addresses were. Compare the text a client shows, after the same change.
    assert sent.content_type.startswith("text/") and not sent.is_attachment, (
        f"{where}: decoded payload changed ({len(sent.payload)} -> {len(got.payload)} bytes)"
    )
    original, delivered = sent.text(), got.text()
    lowered = delivered.lower()
    for address in sender_addresses:
        assert address not in lowered, f"{where}: {address} still in the delivered text"
    expected = _replace_addresses(original, sender_addresses, alias)
    assert expected == delivered, f"{where}: text differs beyond the leak guard's replacements"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(
            b"Received: x\r\nFrom: A <a@a.example>,\r\n B <b@b.example>\r\nTo: t\r\n"
            b"from: c@c.example\r\n\r\nFrom: body line\r\n",
            b"Received: x\r\nFrom: s@shop.example\r\nTo: t\r\n\r\nFrom: body line\r\n",
            id="two-fields-one-folded",
        ),
        pytest.param(
            b"From - Sat Apr 14 2018\nTo: t\n\nbody\n",
            b"From - Sat Apr 14 2018\nFrom: s@shop.example\nTo: t\n\nbody\n",
            id="mbox-line-no-from",
        ),
        pytest.param(
            b"\xef\xbb\xbfFrom: a@a.example\nTo: t\n\nbody",
            b"From: s@shop.example\n\xef\xbb\xbfFrom: a@a.example\nTo: t\n\nbody",
            id="bom-no-header-block",
        ),
    ],
)
def test_replace_from_keeps_every_other_byte(raw: bytes, expected: bytes) -> None:
    assert replace_from(raw, "s@shop.example") == expected


@pytest.mark.parametrize("name", _FILES or MISSING)
def test_corpus_message(corpus_gw: CorpusGateway, name: str | None) -> None:
    if name is None:
        require_corpus()
    assert name is not None
    gw, parties = corpus_gw.gw, corpus_gw.parties
    original_raw = (corpus_dir() / name).read_bytes()
    sent = to_wire(replace_from(original_raw, parties.seller_mailbox))

    before = _last_message_id(gw)
    try:
        code, text = _send(gw.port, parties.seller_mailbox, parties.buyer_alias, sent)
    except (smtplib.SMTPServerDisconnected, ConnectionError) as error:
        pytest.fail(f"the gateway dropped the connection: {error!r}")
    RESULTS[name] = Outcome(code, text)

    assert code == 250 or 500 <= code <= 599, f"answered {code} {text}"
    if code != 250:
        assert text.strip(), f"a {code} refusal must say why"

    # Archived, accepted or refused: exactly the bytes received, with the verdict given.
    rows = [r for r in _archive_rows(gw, before) if r.recipient == parties.buyer_alias]
    assert len(rows) == 1, f"{len(rows)} archive rows for a message answered {code} {text}"
    [row] = rows
    assert row.direction == "seller_to_buyer"
    assert row.verdict == ("accepted" if code == 250 else "refused")
    assert row.smtp_reply.startswith(str(code))
    # smtplib ends the data with CRLF when the message does not (RFC 5321 4.1.1.4).
    received = sent if sent.endswith(b"\r\n") else sent + b"\r\n"
    assert row.raw_received == received
    if code != 250:
        assert row.rule_hits, "a refusal names the rule that made it"
        return

    path = _find_delivered(corpus_gw, row.gateway_message_id)
    # The Maildir file has LF line ends: read it in wire form, as the sent message is.
    delivered = parse(to_wire(path.read_bytes()))

    # No real address of the original reaches the buyer in a header.
    exposed = {
        a
        for a in header_addresses(parse(original_raw), REVEALING_HEADERS)
        if not a.endswith("@" + ALIAS_DOMAIN) and a != parties.buyer_address.lower()
    }
    exposed.add(parties.seller_mailbox.lower())
    for header, value in iter_headers(delivered):
        lowered = value.lower()
        leaked = sorted(a for a in exposed if a in lowered)
        assert not leaked, f"delivered header {header} reveals {leaked}: {value!r}"

    # The MIME tree travels unchanged: same parts, same types, same decoded payloads.
    sent_message = parse(received)
    sender_addresses = {
        a
        for a in header_addresses(sent_message, SENDER_HEADERS)
        if not a.endswith("@" + ALIAS_DOMAIN)
    } | {parties.seller_mailbox.lower()}
    sent_tree, delivered_tree = mime_tree(sent_message), mime_tree(delivered)
    assert [leaf.content_type for leaf in delivered_tree] == [
        leaf.content_type for leaf in sent_tree
    ]
    for index, (before_leaf, after_leaf) in enumerate(zip(sent_tree, delivered_tree, strict=True)):
        _assert_same_leaf(index, before_leaf, after_leaf, sender_addresses, parties.seller_alias)


def test_corpus_summary(corpus_gw: CorpusGateway) -> None:
    """Prints delivered vs refused with the reasons; each delivered message arrived once."""
    if not _FILES:
        require_corpus()
    if not RESULTS:
        pytest.skip("no corpus message was sent in this run")
    delivered = sorted(n for n, o in RESULTS.items() if o.code == 250)
    refused: dict[str, list[str]] = {}
    for name, outcome in sorted(RESULTS.items()):
        if outcome.code != 250:
            reason = f"{outcome.code} " + " | ".join(outcome.text.splitlines())
            refused.setdefault(reason, []).append(name)
    by_class = Counter(f"{o.code // 100}xx" for o in RESULTS.values() if o.code != 250)
    lines = [
        "",
        f"corpus: {len(RESULTS)} sent, {len(delivered)} accepted and delivered, "
        f"{by_class['5xx']} refused (5xx), {by_class['4xx']} temporary failures (4xx)",
    ]
    for reason, names in sorted(refused.items(), key=lambda item: -len(item[1])):
        lines.append(f"  {len(names)} x {reason}")
        lines.extend(f"      {name}" for name in names)
    print("\n".join(lines))

    # Every accepted message was delivered, exactly once.
    assert corpus_gw.gw.maildir is not None
    new = corpus_gw.gw.maildir / "new"
    wait_for(lambda: len(list(new.iterdir())) >= len(delivered), timeout=30)
    ids = Counter(_message_id(path) for path in new.iterdir())
    assert [i for i, n in ids.items() if n > 1] == [], "a message was delivered twice"
    assert sum(ids.values()) == len(delivered)


def _message_id(path: Path) -> str:
    headers = path.read_bytes().partition(b"\n\n")[0]
    found = re.search(rb"(?im)^message-id:\s*(\S+)", headers)
    assert found, f"{path.name} has no Message-ID"
    return found.group(1).decode()
