"""MIME structures from hypothesis, through the intake's pure steps (read, judge, build):
nothing escapes but a refusal, and nothing the recipient receives names the sender's real
address, however it is nested, bounded, encoded or labelled."""

from __future__ import annotations

import base64
import html
import quopri
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from urllib.parse import unquote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.core.model import Conversation, PairStanding, Party, Side
from gateway.intake import build, decide
from gateway.intake.model import Received
from gateway.intake.policy import Policy
from gateway.intake.read import read
from gateway.pipeline.parse import canonical_line_ends
from gateway.policyfile import load_policy
from tests.fuzz.scale import cases, time_limit

DOMAIN = "relay.example.test"
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
SENDER = "owner.shop@seller-mail.example"
SELLER = Party(Side.SELLER, f"sssssssssssssss2@{DOMAIN}", "Shop", (SENDER,), SENDER)
BUYER = Party(
    Side.BUYER, f"bbbbbbbbbbbbbbb2@{DOMAIN}", "Buyer", ("anna@mail.example",), "anna@mail.example"
)
CONVERSATION = Conversation(
    1, 1, SELLER, BUYER, standing=PairStanding(latest_order_at=NOW - timedelta(days=1))
)
# Without content rules every message reaches build, where the sender's address must be
# replaced or the recipient refused; with the shipped policy, as operators run it.
POLICIES = {"no content rules": Policy.compile(), "shipped policy": Policy.compile(load_policy())}
SHARE = {"no content rules": 10_000, "shipped policy": 2_500}

# Places the sender's address may hide in: as written, in capitals, percent- or
# entity-encoded, split by a soft line break, inside an encoded word.
ADDRESS_FORMS = [
    SENDER,
    SENDER.upper(),
    f"<{SENDER}>",
    f"mailto:{SENDER}",
    SENDER.replace("@", "&#64;"),
    SENDER.replace("@", "%40"),
]
CHARSETS = ["utf-8", "iso-8859-1", "gb2312", "us-ascii", "x-unknown", "utf-16", None]
ENCODINGS = ["7bit", "8bit", "base64", "quoted-printable", "binary", "x-uuencode", None]
TYPES = ["text/plain", "text/html", "application/octet-stream", "text/calendar", "image/png"]


@dataclass(frozen=True)
class Leaf:
    ctype: str
    charset: str | None
    encoding: str | None
    text: str
    filename: str | None
    damaged: bool


@dataclass(frozen=True)
class Multi:
    subtype: str
    boundary: str
    children: tuple[object, ...]
    unterminated: bool


texts = st.one_of(
    st.text(max_size=200),
    st.builds(
        lambda a, form, b: f"{a}{form}{b}",
        st.text(max_size=40),
        st.sampled_from(ADDRESS_FORMS),
        st.text(max_size=40),
    ),
)
leaves = st.builds(
    Leaf,
    st.sampled_from(TYPES),
    st.sampled_from(CHARSETS),
    st.sampled_from(ENCODINGS),
    texts,
    st.one_of(st.none(), st.sampled_from(["a.txt", "b.html", f"{SENDER}.txt", "c.bin"])),
    st.booleans(),
)
boundaries = st.one_of(
    st.text(alphabet="abcXYZ0123'()+_,-./:=? ", min_size=1, max_size=70),
    st.just("b"),
)
trees = st.recursive(
    leaves,
    lambda children: st.builds(
        Multi,
        st.sampled_from(["mixed", "alternative", "related", "report", "digest", "x-odd"]),
        boundaries,
        st.lists(children, min_size=0, max_size=4).map(tuple),
        st.booleans(),
    ),
    max_leaves=8,
)
headers = st.lists(
    st.sampled_from(
        [
            f"Reply-To: {SENDER}",
            f"Cc: Someone <{SENDER}>",
            f"X-Note: {SENDER}",
            "Subject: =?utf-8?b?" + base64.b64encode(SENDER.encode()).decode() + "?=",
            f"Subject: write to {SENDER}",
            "Subject: =?gb2312?b?usPO79PF0aE=?=",
            "Content-Language: zh",
            f"Sender: {SENDER}",
            f"Return-Path: <{SENDER}>",
            "References: <a@b> <c@d>",
            "MIME-Version: 1.0",
        ]
    ),
    max_size=4,
)
line_ends = st.sampled_from([b"\r\n", b"\n"])


def _encode(leaf: Leaf) -> bytes:
    codec = {"x-unknown": "utf-8", None: "utf-8", "us-ascii": "utf-8"}.get(
        leaf.charset, leaf.charset
    )
    data = leaf.text.encode(codec or "utf-8", errors="replace")
    if leaf.encoding == "base64":
        encoded = base64.encodebytes(data)
        return (
            encoded[: len(encoded) // 2] + b"!!" + encoded[len(encoded) // 2 :]
            if leaf.damaged
            else encoded
        )
    if leaf.encoding == "quoted-printable":
        encoded = quopri.encodestring(data)
        return encoded.replace(b"=", b"=Z", 1) if leaf.damaged else encoded
    return data


def _render(node: object, eol: bytes) -> bytes:
    if isinstance(node, Leaf):
        head = [
            f"Content-Type: {node.ctype}" + (f"; charset={node.charset}" if node.charset else "")
        ]
        if node.encoding:
            head.append(f"Content-Transfer-Encoding: {node.encoding}")
        if node.filename:
            head.append(f'Content-Disposition: attachment; filename="{node.filename}"')
        return eol.join(h.encode() for h in head) + eol + eol + _encode(node) + eol
    assert isinstance(node, Multi)
    boundary = node.boundary.encode()
    parts = [
        b"Content-Type: multipart/"
        + node.subtype.encode()
        + b'; boundary="'
        + boundary
        + b'"'
        + eol
        + eol
    ]
    for child in node.children:
        parts.append(b"--" + boundary + eol + _render(child, eol))
    if not node.unterminated:
        parts.append(b"--" + boundary + b"--" + eol)
    return b"".join(parts)


def _message(tree: object, extra: list[str], eol: bytes) -> bytes:
    head = [f"From: Shop <{SENDER}>", f"To: {BUYER.alias}", "Subject: order", *extra]
    return eol.join(h.encode() for h in head) + eol + _render(tree, eol)


def _what_the_recipient_reads(raw: bytes) -> str:
    """The delivered message as a mail client shows it: every header decoded, every part
    decoded in its charset (or UTF-8, UTF-16, Latin-1 where that fails), HTML with its
    entities and its links' percent-escapes read as a browser reads them."""
    message = message_from_bytes(raw, policy=default)
    assert isinstance(message, EmailMessage)
    seen = [raw.decode("latin-1")]
    for part in message.walk():
        for name, value in part.items():
            seen.append(f"{name}: {value}")
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        for codec in (part.get_content_charset() or "utf-8", "utf-8", "utf-16", "latin-1"):
            try:
                text = payload.decode(codec)
                break
            except (LookupError, UnicodeDecodeError):
                continue
        seen.append(text)
        if part.get_content_type() == "text/html":
            seen.append(unquote(html.unescape(text)))
    return "\n".join(seen)


_ADDRESS = re.compile(re.escape(SENDER), re.IGNORECASE)


@pytest.mark.parametrize("policy_name", list(POLICIES))
@pytest.mark.timeout(time_limit(300))
def test_no_mime_structure_escapes_a_refusal_or_leaks_the_sender(policy_name: str) -> None:
    policy = POLICIES[policy_name]

    @settings(
        max_examples=cases(SHARE[policy_name]),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(trees, headers, line_ends)
    def one(tree: object, extra: list[str], eol: bytes) -> None:
        _check(_message(tree, extra, eol), policy)

    one()


def _check(raw: bytes, policy: Policy) -> None:
    raw = canonical_line_ends(raw)  # as the intake does before anything else
    arrived = Received(SENDER, raw, None, NOW, "fuzz", DOMAIN)
    received = read(arrived, 100, policy.reads_content)  # read never raises
    rcpt = BUYER.alias
    try:
        judged = decide.judge_alias(received, rcpt, CONVERSATION, policy)
        outcome = (
            build.deliverable(received, judged, policy) if judged.passed else build.refused(judged)
        )
    except Exception:
        # The intake refuses such a message 554 5.6.0 and keeps it (decide.unprocessable):
        # a refusal, not a crash; what matters is that nothing was delivered.
        outcome = decide.unprocessable(received, rcpt, CONVERSATION)
    delivered = outcome.entry.raw_delivered
    if outcome.entry.delivery is None:
        assert delivered is None or outcome.entry.reply.code >= 400
        return
    assert delivered is not None
    shown = _what_the_recipient_reads(delivered)
    assert _ADDRESS.search(shown) is None, "the sender's address reached the recipient"
