"""Writes the blind corpus's messages as .eml files, and splits them once into train, dev
and test.

    python tests/corpus/blind/render.py [SOURCE_DIR]
    python tests/corpus/blind/render.py --into FOLDER SOURCE_DIR

SOURCE_DIR (default: source/ beside this file) holds one `<lang>.jsonl` per language, as
the writers wrote them (the fields are in README.md). Every choice below (charset, transfer
encoding, structure, split) comes from the SHA-256 of the message's id, so a run writes the
same bytes again. Existing .eml files under train/, dev/ and test/ are replaced; with
`--into`, every message goes to FOLDER (beside this file), unsplit: a later blind set.

A writer's HTML message is its text as typed when that is markup (the later sets), else its
text made into paragraphs; its plain-text alternative is the markup read as a mail client
writes one (links as "text <url>").
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import quopri
import re
import sys
from dataclasses import dataclass
from email.header import Header
from email.utils import formataddr
from html.parser import HTMLParser
from pathlib import Path

HERE = Path(__file__).resolve().parent
SPLITS = ("train", "train", "train", "dev", "test")  # 3 : 1 : 1 within each stratum
SPLIT_SALT = b"bsm-gateway blind corpus split 2026-12"
ALIAS_DOMAIN = "relay.example.test"
SELLER_ONLY = {
    "content.marketing",
    "content.feedback_request",
    "content.confirmation_only",
    "content.thanks_only",
    "content.cancel_reason",
    "content.business_name",
}
RULES = SELLER_ONLY | {"content.link", "content.email", "content.phone", "content.social"}
# The charsets each language is written in by the clients its writers use; one is picked
# per message among those that can encode its text (UTF-8 always can).
CHARSETS = {
    "en": ["us-ascii", "utf-8"],
    "zh": ["gb2312", "gbk", "gb18030", "big5", "utf-8"],
    "ja": ["iso-2022-jp", "shift_jis", "euc-jp", "utf-8"],
    "ru": ["koi8-r", "windows-1251", "utf-8"],
    "de": ["iso-8859-1", "iso-8859-15", "windows-1252", "utf-8"],
    "es": ["iso-8859-1", "iso-8859-15", "windows-1252", "utf-8"],
    "fr": ["iso-8859-15", "iso-8859-1", "windows-1252", "utf-8"],
    "it": ["iso-8859-1", "iso-8859-15", "windows-1252", "utf-8"],
}
_URL = re.compile(r"https?://[^\s<>\"]+")
_MARKUP = re.compile(
    r"<(?:p|br|a|div|b|i|u|table|span|html|body|strong|em|ul|ol|li|img|h[1-6])\b", re.I
)


@dataclass(frozen=True)
class Draft:
    id: str
    lang: str
    direction: str
    seller_name: str
    buyer_name: str
    subject: str
    text: str
    html: bool
    expect: tuple[str, ...]
    note: str
    voice: str

    @property
    def seed(self) -> bytes:
        return hashlib.sha256(self.id.encode()).digest()

    def pick(self, choices: list[str], salt: int) -> str:
        return choices[self.seed[salt] % len(choices)]


def load(source: Path) -> tuple[list[Draft], list[str]]:
    drafts: list[Draft] = []
    notes: list[str] = []
    for path in sorted(source.glob("*.jsonl")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            data = json.loads(line)
            expect = tuple(sorted(set(data["expect"])))
            unknown = set(expect) - RULES
            if unknown:
                raise SystemExit(f"{path.name}:{number}: unknown rule ids {sorted(unknown)}")
            if data["direction"] == "buyer-to-seller" and set(expect) & SELLER_ONLY:
                # The writer labelled a seller-only rule on a buyer's message: by the
                # conventions it does not apply there.
                notes.append(f"{data['id']}: {sorted(set(expect) & SELLER_ONLY)} dropped")
                expect = tuple(r for r in expect if r not in SELLER_ONLY)
            drafts.append(
                Draft(
                    id=data["id"],
                    lang=data["lang"],
                    direction=data["direction"],
                    seller_name=data["seller_name"],
                    buyer_name=data["buyer_name"],
                    subject=data["subject"],
                    text=data["text"],
                    html=bool(data.get("html")),
                    expect=expect,
                    note=data["note"],
                    voice=data.get("voice", ""),
                )
            )
    ids = [d.id for d in drafts]
    if len(ids) != len(set(ids)):
        raise SystemExit("duplicate ids")
    return drafts, notes


def split_of(drafts: list[Draft]) -> dict[str, str]:
    """Within each (language, first label) stratum, in the order of a salted hash of the
    ids: three to train, one to dev, one to test."""
    strata: dict[tuple[str, str], list[Draft]] = {}
    for draft in drafts:
        strata.setdefault((draft.lang, (draft.expect or ("clean",))[0]), []).append(draft)
    chosen = {}
    for members in strata.values():
        members.sort(key=lambda d: hashlib.sha256(SPLIT_SALT + d.id.encode()).digest())
        for index, draft in enumerate(members):
            chosen[draft.id] = SPLITS[index % len(SPLITS)]
    return chosen


def charset_for(draft: Draft) -> str:
    text = draft.subject + draft.text + draft.seller_name + draft.buyer_name
    usable = []
    for charset in CHARSETS.get(draft.lang, ["utf-8"]):
        try:
            text.encode(charset)
        except UnicodeEncodeError:
            continue
        usable.append(charset)
    return draft.pick(usable, 0)


def encoded_header(value: str, charset: str, one_word: bool = False) -> str:
    """RFC 2047. A display name is one encoded word however long: Python's parser reads
    a space into a name folded over two (the names are what content.business_name reads)."""
    if value.isascii():
        return value
    header = Header(value, charset if charset != "us-ascii" else "utf-8")
    return header.encode(linesep="\r\n", maxlinelen=998 if one_word else 76)


def body_lines(text: str, charset: str) -> list[bytes]:
    # Each line on its own: ISO-2022-JP returns to ASCII before every line end.
    return [line.encode(charset) for line in text.split("\n")]


def leaf(text: str, subtype: str, charset: str, encoding: str) -> bytes:
    lines = body_lines(text, charset)
    if encoding == "base64":
        body = base64.encodebytes(b"\r\n".join(lines)).replace(b"\n", b"\r\n")
    elif encoding == "quoted-printable":
        body = b"".join(
            quopri.encodestring(line).rstrip(b"\n").replace(b"\n", b"\r\n") + b"\r\n"
            for line in lines
        )
    else:
        if any(len(line) > 998 for line in lines):
            return leaf(text, subtype, charset, "quoted-printable")
        body = b"\r\n".join(lines) + b"\r\n"
    head = (
        f'Content-Type: text/{subtype}; charset="{charset}"\r\n'
        f"Content-Transfer-Encoding: {encoding}\r\n\r\n"
    )
    return head.encode("ascii") + body


def encoding_for(draft: Draft, charset: str, salt: int) -> str:
    data = draft.text.encode(charset)
    if data.isascii():
        return draft.pick(["7bit", "7bit", "quoted-printable"], salt)
    return draft.pick(["8bit", "quoted-printable", "base64"], salt)


def as_html(text: str) -> str:
    paragraphs = []
    for paragraph in re.split(r"\n\s*\n", text):
        escaped = html.escape(paragraph)
        linked = _URL.sub(lambda m: f'<a href="{m.group(0)}">{m.group(0)}</a>', escaped)
        paragraphs.append("<p>" + linked.replace("\n", "<br>\n") + "</p>")
    return (
        '<html><head><meta http-equiv="Content-Type" content="text/html">'
        '</head><body style="font-family: Arial, sans-serif">\n'
        + "\n".join(paragraphs)
        + "\n</body></html>"
    )


class _PlainText(HTMLParser):
    """Markup as a mail client writes its plain-text alternative: block ends as line ends,
    list items with a dash, a link as its text and "<url>" after it (the URL alone when the
    text is the URL), images by their alt text."""

    _BLOCKS = frozenset("p div br tr li h1 h2 h3 h4 h5 h6 table ul ol blockquote".split())  # noqa: SIM905

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._href: list[str | None] = []
        self._link_start = 0
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("style", "script", "head", "title"):
            self._skip += 1
        elif tag == "a":
            self._href.append(dict(attrs).get("href"))
            self._link_start = len(self.parts)
        elif tag == "li":
            self.parts.append("\n- ")
        elif tag == "img" and dict(attrs).get("alt"):
            self.parts.append(f"[{dict(attrs)['alt']}]")
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script", "head", "title"):
            self._skip = max(0, self._skip - 1)
        elif tag == "a" and self._href:
            href = self._href.pop()
            label = "".join(self.parts[self._link_start :]).strip()
            if href and not href.startswith("#") and href.removeprefix("mailto:") != label:
                self.parts.append(f" <{href}>")
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(re.sub(r"\s+", " ", data))

    def text(self) -> str:
        lines = [line.strip() for line in "".join(self.parts).split("\n")]
        return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


def plain_of(markup: str) -> str:
    reader = _PlainText()
    reader.feed(markup)
    reader.close()
    return reader.text()


def html_document(markup: str) -> str:
    if re.search(r"<html\b", markup, re.I):
        return markup
    return (
        '<html><head><meta http-equiv="Content-Type" content="text/html"></head>\n'
        f"<body>\n{markup}\n</body></html>"
    )


def render(draft: Draft, number: int) -> bytes:
    charset = charset_for(draft)
    seller_box = f"{re.sub(r'[^a-z]', '', draft.seller_name.lower())[:12] or 'seller'}"
    seller = (
        encoded_header(draft.seller_name, charset, one_word=True),
        f"{seller_box}@shop{number % 7}.example",
    )
    buyer = (
        encoded_header(draft.buyer_name, charset, one_word=True),
        f"buyer{number}@mail.example.com",
    )
    alias = f"{draft.seed.hex()[:20]}@{ALIAS_DOMAIN}"  # the other party's, as the sender sees it
    if draft.direction == "seller-to-buyer":
        sender, recipient = formataddr(seller), formataddr((buyer[0], "b" + alias))
    else:
        sender, recipient = formataddr(buyer), formataddr((seller[0], "s" + alias))
    headers = [
        f"From: {sender}",
        f"To: {recipient}",
        f"Subject: {encoded_header(draft.subject, charset)}",
        f"Date: Mon, {1 + draft.seed[3] % 28:02d} Sep 2026 {draft.seed[4] % 24:02d}:"
        f"{draft.seed[5] % 60:02d}:00 +0000",
        f"Message-ID: <{draft.id}.{draft.seed.hex()[:12]}@mail.example.com>",
        "MIME-Version: 1.0",
        f"X-Policy-Expect: {', '.join(draft.expect) or 'none'}",
        f"X-Policy-Direction: {draft.direction}",
        f"X-Policy-Language: {draft.lang}",
        f"X-Policy-Note: {draft.note.encode('ascii', 'replace').decode()}",
    ]
    head = "".join(h + "\r\n" for h in headers).encode("ascii")
    markup = draft.html and _MARKUP.search(draft.text) is not None
    typed = plain_of(draft.text) if markup else draft.text
    plain = leaf(typed, "plain", charset, encoding_for(draft, charset, 1))
    if not draft.html:
        return head + plain
    document = html_document(draft.text) if markup else as_html(draft.text)
    rich = leaf(document, "html", charset, encoding_for(draft, charset, 2))
    if draft.seed[6] % 5 == 0:  # a client that sends HTML alone
        return head + rich
    boundary = f"=_alt_{draft.seed.hex()[:16]}"
    return (
        head
        + f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'.encode()
        + f"--{boundary}\r\n".encode()
        + plain
        + f"--{boundary}\r\n".encode()
        + rich
        + f"--{boundary}--\r\n".encode()
    )


def file_name(draft: Draft) -> str:
    labels = "-".join(r.split(".", 1)[1].replace("_", "-") for r in draft.expect) or "clean"
    return f"{draft.id}-{labels}.eml"


def render_into(folder: Path, source: Path) -> None:
    """Every message of `source` into `folder`, unsplit (a later blind set)."""
    drafts, notes = load(source)
    folder.mkdir(exist_ok=True)
    for old in folder.glob("*.eml"):
        old.unlink()
    for number, draft in enumerate(drafts, 1):
        (folder / file_name(draft)).write_bytes(render(draft, number))
    for note in notes:
        print(note)
    print(folder.name, len(drafts))


def main(source: Path) -> None:
    drafts, notes = load(source)
    splits = split_of(drafts)
    for split in set(SPLITS):
        folder = HERE / split
        folder.mkdir(exist_ok=True)
        for old in folder.glob("*.eml"):
            old.unlink()
    for number, draft in enumerate(drafts, 1):
        (HERE / splits[draft.id] / file_name(draft)).write_bytes(render(draft, number))
    for note in notes:
        print(note)
    for split in ("train", "dev", "test"):
        print(split, sum(1 for s in splits.values() if s == split))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--into":
        render_into(HERE / sys.argv[2], Path(sys.argv[3]))
    else:
        main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "source")
