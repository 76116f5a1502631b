# ruff: noqa: RUF001  (the Chinese and Japanese paragraphs use full-width punctuation)
"""Cost of the content policy per message: `python -m bench.policy` (what `make bench-policy`
runs). No server, no database: the functions the gateway calls on DATA, in this process.

Stages, timed separately for each message:

  read      parse_message(raw), then read_content: MIME walk, text decoded and folded, HTML
            reduced to text and links, attachments sniffed, PDF text extracted by pypdf
  rules     check_content(facts, rules, SELLER_TO_BUYER, alias domain): every content rule
            of the shipped policy (config/policy.toml and its lexicons), as `policy check`.
            The compiled Policy is built anew, off the clock, for each pass: its scanner
            keeps the last texts it read, and a new message's text is never among them
  sanitize  sanitize_html of the HTML part with the policy's [html] allow-list, as a delivery
            does (HTML messages only)

Messages, built before the clock starts and clean (the policy passes them, so every rule
reads to the end; a refused one is reported and the exit status is 1, as it is when the
PDF's text is not all read; a policy that does not load exits 2):

  text  a seller's plain-text customer-service message (8bit UTF-8): English, German,
        Chinese, Japanese and Russian paragraphs, order numbers, prices, a ups.com link
  html  multipart/alternative, quoted-printable: a plain-text part and a mailer-style HTML
        part (nested tables, inline styles, a <style> head, product images and links to
        ups.com and the marketplace), one section per parcel of a large order
  pdf   a short note and an assembly guide as a PDF attachment (base64): one page per step,
        ~2.5 KB of English and German text and one JPEG photo each, written here by hand
        (pypdf reads PDFs but has no API to draw text)

Each kind is built at x1, x2, x4 and x8 its base size (text 5 KiB, html 200 KiB, pdf
1.25 MiB: the "5 MB" PDF message is its x4). The PDF grows by pages and stays under the
gateway's PDF_MAX_PAGES and DOCUMENT_TEXT_MAX, which would otherwise cap what is read.

Each case runs once untimed (imports, caches), then --repeats times or, past
--min-repeats, until --budget seconds are spent on it; each stage's figure is its best
(shortest) run, time.perf_counter: other work on the machine only ever adds time, so the
best is the steadiest figure to compare sizes by. Total is the sum of the stages. Growth
per kind: t(x8)/t(x1), and the exponent log(t8/t1) / log(size8/size1): 1 is linear; above
1.2 a warning is printed. Peak memory is tracemalloc's peak over one more run of each
kind's x8 message (Python allocations only, the raw bytes excluded). Nothing is written to
disk; --json prints the results as one JSON object instead of the tables.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import math
import random
import sys
import textwrap
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate
from functools import cache
from typing import Any

from PIL import Image
from rich import box
from rich.console import Console
from rich.table import Table

from bench.report import machine
from gateway.core.model import Direction
from gateway.intake.check import check_content
from gateway.intake.decide import ContentVerdict
from gateway.intake.policy import Policy
from gateway.pipeline.content import DOCUMENT_TEXT_MAX, PDF_MAX_PAGES, read_content
from gateway.pipeline.mime import leaf_parts, read_text
from gateway.pipeline.parse import parse_message
from gateway.pipeline.sanitize import HtmlCleaning, sanitize_html
from gateway.policy.config import ContentPolicy
from gateway.policyfile import PolicyError, load_policy

KIB = 1024
SCALES = (1, 2, 4, 8)
BASE_SIZES = {"text": 5 * KIB, "html": 200 * KIB, "pdf": 1280 * KIB, "runs": 32 * KIB}
GROWTH_WARNING = 1.2  # exponent above which a stage is reported as growing faster than linear
DIRECTION = Direction.SELLER_TO_BUYER
ALIAS_DOMAIN = "relay.example.test"  # config/gateway.toml's; the messages are sent to it
STAGES = ("read", "rules", "sanitize")

console = Console(width=None if sys.stdout.isatty() else 100)  # the tables fit, piped too
progress = Console(stderr=True)


# -- the messages --------------------------------------------------------------------------

_PARAGRAPHS = (
    "Your order {order} left our workshop this morning with UPS. You can follow the parcel "
    "here: https://www.ups.com/track?loc=en_US&tracknum={ups} - the page usually shows the "
    "first scan a few hours after pickup, so please do not worry if it is empty at first.",
    "Guten Tag, Ihre Bestellung {order} vom {date} wurde heute verpackt und an UPS übergeben. "
    "Die Zustellung nach Deutschland dauert in der Regel drei bis fünf Werktage; bei "
    "Feiertagen kann es einen Tag länger dauern.",
    "您好！您的订单 {order} 已于今天从我们的工作室发出，通过 UPS 运输，预计五到七个工作日送达。"
    "包裹里有两只陶瓷杯和一块亚麻茶巾，每件都用再生纸单独包好，运输途中不会互相碰撞。",
    "ご注文 {order} の商品は本日 UPS にて発送いたしました。お届けまでは通常五日から七日ほど"
    "かかります。箱を開けたら、まず割れや欠けがないかをご確認ください。",
    "Здравствуйте! Ваш заказ {order} отправлен сегодня через UPS. Обычно доставка занимает от "
    "пяти до семи рабочих дней, в зависимости от таможни. Если посылка не двигается больше "
    "трёх дней, просто ответьте на это сообщение, и я напишу перевозчику.",
    "About the glaze: small pinholes and slight differences in colour come from the second "
    "firing and are not a defect. The mugs are safe in the dishwasher and the microwave, "
    "although washing them by hand keeps the colour longer.",
    "Die Geschirrtücher aus Leinen bitte vor dem ersten Gebrauch bei 40 Grad waschen; sie "
    "werden mit jeder Wäsche weicher. Weichspüler macht Leinen weniger saugfähig, der "
    "Trockner auf niedriger Stufe ist in Ordnung.",
    "陶瓷杯可以放入洗碗机和微波炉，但手洗可以让釉色保持得更久。釉面上的小气孔是手工烧制的正常现象，"
    "不属于质量问题。如果收到时有破损，请先拍照，再回复这条消息，我们会尽快处理。",
    "リネンのふきんは最初に一度洗ってからお使いください。洗うたびに柔らかくなり、吸水性も良くなり"
    "ます。柔軟剤は吸水性を下げるので、使わないことをおすすめします。",
    "Если посылка пришла повреждённой, пожалуйста, сфотографируйте коробку и товар до того, "
    "как выбросите упаковку, и ответьте на это сообщение. Замену мы отправим за свой счёт, "
    "разбитые вещи возвращать не нужно.",
    "The invoice for order {order} is EUR {price} including VAT, and the customs paperwork "
    "is in the plastic sleeve on the outside of the box. Nothing more is due on delivery "
    "for addresses inside the EU.",
    "If anything arrives broken, please take a photo of the item and of the box before "
    "throwing the packaging away, and reply here with the photos; a replacement goes out "
    "the same day and you do not need to send the pieces back.",
)
_PRODUCTS = (
    ("Hand-thrown stoneware mug, sage glaze", "38.00"),
    ("Linen tea towel, natural, 50 x 70 cm", "14.50"),
    ("Loose-leaf sencha, 100 g tin", "12.90"),
    ("Beeswax food wrap, assorted sizes", "21.00"),
    ("Bamboo tea scoop", "6.40"),
    ("Cast-iron teapot, 0.8 l, matte black", "64.00"),
    ("Walnut serving board, oiled", "45.00"),
)


@dataclass(frozen=True, slots=True)
class Order:
    number: str  # eight digits: neither a phone number nor a date
    ups: str  # a UPS tracking number, 1Z + 16
    date: str
    price: str


def order(rng: random.Random) -> Order:
    return Order(
        number=str(rng.randrange(10_000_000, 99_999_999)),
        ups="1Z" + "".join(rng.choices("0123456789ABCDEFGHJKLMNPRSTUVWXY", k=16)),
        date=f"{rng.randrange(1, 28):02d}.{rng.randrange(1, 12):02d}.2026",
        price=f"{rng.randrange(20, 400)}.{rng.randrange(0, 99):02d}",
    )


def paragraph(index: int, rng: random.Random) -> str:
    o = order(rng)
    text = _PARAGRAPHS[index % len(_PARAGRAPHS)]
    return text.format(order=o.number, ups=o.ups, date=o.date, price=o.price)


def _envelope(message: EmailMessage, subject: str) -> EmailMessage:
    message["From"] = "Kiln and Leaf <seller@shop.example>"
    message["To"] = f"b000000000000001@{ALIAS_DOMAIN}"
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = "<policy-bench.1@shop.example>"
    message["MIME-Version"] = "1.0"
    return message


def _fill(text: str) -> str:
    """Lines of at most 76 characters, as mailers wrap (CJK runs are cut anywhere)."""
    return textwrap.fill(text, 76)


def text_message(units: int) -> bytes:
    rng = random.Random(1)
    paragraphs = [_fill(paragraph(i, rng)) for i in range(units)]
    body = "Hello Ms Tanaka,\n\n" + "\n\n".join(paragraphs) + "\n\nBest wishes,\nMira\n"
    message = _envelope(EmailMessage(), "Your order 48211907: shipping details")
    message.set_content(body, cte="8bit")
    return message.as_bytes(policy=SMTP)


_CELL = "font-family:Arial,Helvetica,sans-serif;font-size:14px;line-height:21px;color:#4a443e;"
_SECTION = """\
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" \
style="border-collapse:collapse;margin:0 0 24px 0;background-color:#ffffff;\
border:1px solid #e5e1da;border-radius:6px;">
<tr><td style="padding:16px 20px 8px 20px;font-family:Georgia,'Times New Roman',serif;\
font-size:18px;line-height:24px;color:#2b2622;">Parcel {n}: order {order} &middot; \
{date}</td></tr>
<tr><td style="padding:0 20px 12px 20px;{cell}"><p style="margin:0 0 12px 0;">{text}</p>\
</td></tr>
<tr><td style="padding:0 20px;"><table width="100%" cellpadding="6" cellspacing="0" \
border="0" style="border-collapse:collapse;border-top:1px solid #e5e1da;">
<tr><th align="left" style="{cell}font-weight:bold;">Item</th><th align="right" \
style="{cell}font-weight:bold;">Qty</th><th align="right" style="{cell}font-weight:bold;">\
Price</th></tr>
{rows}</table></td></tr>
<tr><td style="padding:12px 20px 20px 20px;{cell}"><a href="https://www.ups.com/track?\
loc=en_US&amp;tracknum={ups}" style="color:#8a5a2b;text-decoration:underline;">Track \
parcel {ups}</a> &nbsp;|&nbsp; <a href="https://marketplace.example/orders/{order}" \
style="color:#8a5a2b;text-decoration:underline;">Order details</a></td></tr>
</table>
"""
_ROW = """\
<tr><td style="{cell}border-bottom:1px solid #f0ece6;"><img \
src="https://marketplace.example/img/p/{sku}.jpg" alt="{name}" width="48" height="48" \
style="display:inline-block;vertical-align:middle;border-radius:4px;margin-right:8px;">\
<span style="vertical-align:middle;">{name}</span></td><td align="right" \
style="{cell}border-bottom:1px solid #f0ece6;">{qty}</td><td align="right" \
style="{cell}border-bottom:1px solid #f0ece6;">EUR&nbsp;{price}</td></tr>
"""
_HTML_HEAD = """\
<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Shipping update</title>
<style>body{{margin:0;padding:0}}@media (max-width:600px){{.wrap{{width:100%!important}}}}</style>
</head><body style="margin:0;padding:0;background-color:#f4f1ec;">
<table class="wrap" width="640" align="center" cellpadding="0" cellspacing="0" border="0" \
style="margin:0 auto;padding:24px;">
<tr><td style="padding:0 0 20px 0;{cell}"><h1 style="margin:0;font-size:22px;color:#2b2622;">\
Kiln and Leaf</h1><p style="margin:8px 0 0 0;">Hello Mr Becker, your wholesale order \
ships in several parcels; each one is listed below with its tracking link.</p></td></tr>
<tr><td>
"""
_HTML_FOOT = """\
</td></tr>
<tr><td style="padding:20px 0;{cell}font-size:12px;color:#8c857d;">Kiln and Leaf, \
handmade kitchen and tea goods. Workshop open Thursday to Saturday, 10:00 to 17:00.</td></tr>
</table></body></html>
"""


def html_message(units: int) -> bytes:
    rng = random.Random(2)
    sections: list[str] = []
    plain: list[str] = []
    for n in range(1, units + 1):
        o = order(rng)
        text = paragraph(rng.choice((0, 1, 5, 6, 10, 11)), rng)
        items = rng.sample(_PRODUCTS, 4)
        rows = "".join(
            _ROW.format(
                cell=_CELL,
                sku=rng.randrange(10_000, 99_999),
                name=name,
                price=price,
                qty=rng.randrange(1, 6),
            )
            for name, price in items
        )
        sections.append(
            _SECTION.format(
                n=n, order=o.number, date=o.date, ups=o.ups, text=text, rows=rows, cell=_CELL
            )
        )
        lines = [f"  {name}  EUR {price}" for name, price in items]
        plain.append(f"Parcel {n}: order {o.number}, {o.date}\n{_fill(text)}\n" + "\n".join(lines))
    html = _HTML_HEAD.format(cell=_CELL) + "".join(sections) + _HTML_FOOT.format(cell=_CELL)
    message = _envelope(EmailMessage(), "Your wholesale order ships in parcels")
    message.set_content("\n\n".join(plain), cte="quoted-printable")
    message.add_alternative(html, subtype="html", cte="quoted-printable")
    return message.as_bytes(policy=SMTP)


_GUIDE = (
    "Lay all parts on a soft blanket and check them against the parts list on page one. "
    "Keep the small bag of dowels and screws closed until step four so that nothing rolls "
    "away. You need a Phillips screwdriver, size 2, and a rubber mallet or a folded towel.",
    "Legen Sie alle Teile auf eine weiche Decke und prüfen Sie sie anhand der Stückliste. "
    "Die Schrauben werden nur handfest angezogen; das Holz arbeitet und darf nicht reißen.",
    "Insert the four short dowels into the holes on the inner side of panel B, with a drop "
    "of glue in each hole. Press panel C onto the dowels until both edges are flush, then "
    "tap along the joint with the mallet, never directly on the wood.",
    "Fasten the back board with the 16 mm screws, starting in the corners and working "
    "towards the middle. Stop turning as soon as the screw head touches the board: the "
    "walnut is soft and the thread tears out if it is forced.",
    "Oil the board once a month during the first year with food-safe linseed or walnut oil. "
    "Apply a thin coat with a cloth, wait twenty minutes and wipe off what was not absorbed.",
)


def _pdf_text(text: str) -> bytes:
    escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    return b"(" + escaped.encode("cp1252") + b")"


@cache
def _page_content(index: int) -> bytes:
    """A page's drawing operators: a heading, ~30 lines of text, the photo top right."""
    rng = random.Random(index)
    lines = [f"Step {index + 1}: assembly and care, model WB-{rng.randrange(100, 999)}", ""]
    while sum(map(len, lines)) < 2400:
        lines.extend(_fill(rng.choice(_GUIDE)).splitlines())
        lines.append("")
    text = b" T* ".join(_pdf_text(line) + b" Tj" for line in lines)
    return b"q 160 0 0 160 400 640 cm /Im1 Do Q\nBT /F1 10 Tf 12 TL 50 780 Td " + text + b" ET\n"


@cache
def _page_photo(index: int) -> bytes:
    """A 200 x 200 JPEG of noise: a photo's size (~25 KB), not its looks."""
    rng = random.Random(10_000 + index)
    image = Image.frombytes("RGB", (200, 200), rng.randbytes(200 * 200 * 3))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=75)
    return buffer.getvalue()


def _stream(dictionary: bytes, data: bytes) -> bytes:
    return b"<< " + dictionary + b" /Length %d >>\nstream\n" % len(data) + data + b"\nendstream"


def pdf_document(pages: int) -> bytes:
    """A PDF 1.4 file: Helvetica (WinAnsi) text and one DCT-encoded photo per page."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"", b""]  # the page tree comes last
    objects[2] = (
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
    )
    kids: list[bytes] = []
    for index in range(pages):
        first = len(objects) + 1  # content, photo, page
        objects.append(_stream(b"", _page_content(index)))
        objects.append(
            _stream(
                b"/Type /XObject /Subtype /Image /Width 200 /Height 200 /ColorSpace /DeviceRGB"
                b" /BitsPerComponent 8 /Filter /DCTDecode",
                _page_photo(index),
            )
        )
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font"
            b" << /F1 3 0 R >> /XObject << /Im1 %d 0 R >> >> /Contents %d 0 R >>"
            % (first + 1, first)
        )
        kids.append(b"%d 0 R" % (first + 2))
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(kids), pages)
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def pdf_message(pages: int) -> bytes:
    message = _envelope(EmailMessage(), "Assembly guide for your walnut shelf, order 48211907")
    message.set_content(
        "Hello Mr Becker,\n\nas promised in my last message, here is the assembly guide for "
        "the walnut shelf, with a photo of every step. The parts list is on the first page."
        "\n\nBest wishes,\nMira\n",
        cte="8bit",
    )
    message.add_attachment(
        pdf_document(pages), maintype="application", subtype="pdf", filename="assembly-guide.pdf"
    )
    return message.as_bytes(policy=SMTP)


# Runs that make a careless pattern quadratic: digits, blanks, spelled-out dots, one long
# word. Each unit is one of each; the body is the units back to back, as one attachment-like
# wall of text a sender could paste. Refusing it is fine; taking long over it is not.
_RUN_UNIT = "1" * 2000 + " " * 2000 + "\n" * 200 + "v dot " * 300 + "v点" * 500 + "x" * 2000


def runs_message(units: int) -> bytes:
    message = _envelope(EmailMessage(), "Runs")
    message.set_content(_RUN_UNIT * units, cte="8bit")
    return message.as_bytes(policy=SMTP)


BUILDERS: dict[str, Callable[[int], bytes]] = {
    "text": text_message,
    "html": html_message,
    "pdf": pdf_message,
    "runs": runs_message,
}
MAY_BE_REFUSED = {"runs"}


def sized(build: Callable[[int], bytes], target: int) -> tuple[bytes, int]:
    """A message of at least `target` bytes and its units (paragraphs, parcels, pages), about
    as few as that takes: size grows linearly with units, so two small builds tell how many."""
    small, large = len(build(4)), len(build(8))
    units = max(1, math.floor(4 + (target - small) * 4 / (large - small)))
    raw = build(units)
    while len(raw) < target:  # units differ a little in size: top up
        units += 1
        raw = build(units)
    return raw, units


# -- measuring -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Case:
    kind: str
    scale: int
    raw: bytes
    units: int
    html: str | None  # the decoded HTML part, for the sanitiser


@dataclass
class Result:
    kind: str
    scale: int
    size: int  # bytes of the message as received
    units: int
    text_chars: int  # characters the rules read (every text block)
    runs: int = 0
    seconds: dict[str, float | None] = field(default_factory=dict)  # stage -> best run
    refused: list[str] = field(default_factory=list)

    @property
    def total(self) -> float:
        return sum(s for s in self.seconds.values() if s is not None)

    def summary(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "scale": self.scale,
            "bytes": self.size,
            "units": self.units,
            "text_chars": self.text_chars,
            "runs": self.runs,
            **{f"{stage}_ms": _ms(self.seconds.get(stage)) for stage in STAGES},
            "total_ms": _ms(self.total),
            "us_per_kib": round(self.total * 1e6 / (self.size / KIB), 2),
            "refused": self.refused,
        }


@dataclass(frozen=True, slots=True)
class Options:
    repeats: int
    min_repeats: int
    budget: float
    json: bool


class Bench:
    def __init__(self, policy: ContentPolicy) -> None:
        self.policy = policy
        html = policy.settings.html
        self.cleaning = HtmlCleaning(
            tags=frozenset(html.tags),
            attributes={tag: frozenset(names) for tag, names in html.attributes.items()},
            remove_with_content=frozenset(html.remove_with_content),
            url_schemes=frozenset(html.url_schemes),
        )

    def run_once(self, case: Case) -> tuple[dict[str, float | None], ContentVerdict, int]:
        """One pass: each stage's seconds, the verdict, the characters of text the rules
        read. The rule set is new: an old one's scanner still holds this text's links."""
        rules = Policy.compile(self.policy)
        began = time.perf_counter()
        facts = read_content(parse_message(case.raw))
        read = time.perf_counter()
        verdict = check_content(facts, rules, DIRECTION, ALIAS_DOMAIN)
        ruled = time.perf_counter()
        cleaned: float | None = None
        if case.html is not None:
            unwrap = frozenset(
                link.target.strip() for link in facts.links if rules.rules.unwraps(link)
            )
            sanitize_html(case.html, self.cleaning.with_unwrapped(unwrap))
            cleaned = time.perf_counter() - ruled
        seconds = {"read": read - began, "rules": ruled - read, "sanitize": cleaned}
        return seconds, verdict, sum(len(b.text) + len(b.quoted) for b in facts.blocks)

    def measure(self, case: Case, options: Options) -> Result:
        _, verdict, text_chars = self.run_once(case)  # untimed: imports, regex and PSL caches
        result = Result(
            case.kind,
            case.scale,
            len(case.raw),
            case.units,
            text_chars,
            refused=[f"{v.rule_id}: {v.detail}" for v in (*verdict.refused, *verdict.shadowed)],
        )
        samples: dict[str, list[float]] = {stage: [] for stage in STAGES}
        started = time.perf_counter()
        while result.runs < options.repeats and (
            result.runs < options.min_repeats or time.perf_counter() - started < options.budget
        ):
            gc.collect()
            seconds, _, _ = self.run_once(case)
            for stage, value in seconds.items():
                if value is not None:
                    samples[stage].append(value)
            result.runs += 1
        result.seconds = {s: min(v) if v else None for s, v in samples.items()}
        return result

    def peak_mib(self, case: Case) -> float:
        gc.collect()
        tracemalloc.start()
        try:
            self.run_once(case)
            return tracemalloc.get_traced_memory()[1] / KIB / KIB
        finally:
            tracemalloc.stop()


def build_case(kind: str, scale: int) -> Case:
    raw, units = sized(BUILDERS[kind], BASE_SIZES[kind] * scale)
    parsed = parse_message(raw)
    html = next(
        (read_text(p) for p in leaf_parts(parsed.message) if p.get_content_type() == "text/html"),
        None,
    )
    return Case(kind, scale, raw, units, html)


def growth(results: Sequence[Result]) -> dict[str, Any]:
    """x8 against x1 of one kind: the time ratio and exponent of each stage and the total."""
    small, large = results[0], results[-1]
    size_ratio = large.size / small.size
    figures: dict[str, Any] = {"size_ratio": round(size_ratio, 2)}
    for stage in (*STAGES, "total"):
        t1 = small.total if stage == "total" else small.seconds.get(stage)
        t8 = large.total if stage == "total" else large.seconds.get(stage)
        if t1 and t8:
            figures[f"{stage}_ratio"] = round(t8 / t1, 2)
            figures[f"{stage}_exponent"] = round(math.log(t8 / t1) / math.log(size_ratio), 3)
    return figures


def faster_than_linear(growths: dict[str, dict[str, Any]]) -> list[str]:
    return [
        f"{kind} {stage}: t(x8)/t(x1) = {g[f'{stage}_ratio']:.1f} for {g['size_ratio']:.1f}x "
        f"the bytes, exponent {g[f'{stage}_exponent']:.2f} > {GROWTH_WARNING}"
        for kind, g in growths.items()
        for stage in (*STAGES, "total")
        if g.get(f"{stage}_exponent", 0) > GROWTH_WARNING
    ]


def check_pdf(case: Case, result: Result) -> list[str]:
    """The PDF's text must be read, and all of it: below the gateway's caps."""
    problems = []
    if result.text_chars < case.units * 2000:
        problems.append(f"pdf x{case.scale}: only {result.text_chars} characters read")
    if case.units > PDF_MAX_PAGES or result.text_chars > DOCUMENT_TEXT_MAX:
        problems.append(f"pdf x{case.scale}: {case.units} pages, past the gateway's read caps")
    return problems


# -- the run -------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.policy",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--repeats", type=int, default=9, help="timed runs per case, at most (default 9)")
    add("--min-repeats", type=int, default=3, help="timed runs per case, at least (default 3)")
    add("--budget", type=float, default=4.0, help="seconds per case past --min-repeats (4)")
    add("--json", action="store_true", help="print one JSON object instead of the tables")
    args = parser.parse_args(argv)
    if not 1 <= args.min_repeats <= args.repeats:
        parser.error("need 1 <= --min-repeats <= --repeats")
    return Options(args.repeats, args.min_repeats, args.budget, args.json)


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    started = datetime.now(UTC)
    began = time.perf_counter()
    try:
        policy = load_policy()
    except PolicyError as error:
        progress.print(f"[red]{error}[/red]", highlight=False)
        return 2
    bench = Bench(policy)
    results: dict[str, list[Result]] = {}
    peaks: dict[str, float] = {}
    problems: list[str] = []
    for kind in BUILDERS:
        for scale in SCALES:
            case = build_case(kind, scale)
            progress.print(
                f"[dim]{time.perf_counter() - began:6.1f} s[/dim]  {kind} x{scale}: "
                f"{len(case.raw) / KIB:,.0f} KiB, {case.units} units",
                highlight=False,
            )
            result = bench.measure(case, options)
            results.setdefault(kind, []).append(result)
            if kind not in MAY_BE_REFUSED:
                problems.extend(f"{kind} x{scale} refused: {r}" for r in result.refused)
            if kind == "pdf":
                problems.extend(check_pdf(case, result))
            if scale == SCALES[-1]:
                peaks[kind] = bench.peak_mib(case)
    growths = {kind: growth(rows) for kind, rows in results.items()}
    warnings = faster_than_linear(growths)
    document = {
        "benchmark": "policy",
        "started": started.isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - began, 1),
        "policy_version": policy.version,
        "direction": DIRECTION.value,
        "options": {
            "repeats": options.repeats,
            "min_repeats": options.min_repeats,
            "budget": options.budget,
        },
        "cases": [r.summary() for rows in results.values() for r in rows],
        "growth": growths,
        "peak_mib_x8": {kind: round(mib, 1) for kind, mib in peaks.items()},
        "warnings": warnings,
        "problems": problems,
        "machine": machine(),
    }
    if options.json:
        print(json.dumps(document, indent=2))
    else:
        print_tables(document)
    return 1 if problems else 0


def print_tables(document: dict[str, Any]) -> None:
    table = Table(
        title=f"Content policy {document['policy_version']}, {document['direction']}: "
        "ms per message, best run",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    headers = ("case", "KiB", "chars", "runs", *STAGES, "total", "µs/KiB")
    for name in headers:
        table.add_column(name, justify="left" if name == "case" else "right")
    for row in document["cases"]:
        table.add_row(
            f"{row['kind']} x{row['scale']}",
            f"{row['bytes'] / KIB:,.0f}",
            f"{row['text_chars']:,}",
            str(row["runs"]),
            *(_fmt(row[f"{stage}_ms"]) for stage in (*STAGES, "total")),
            _fmt(row["us_per_kib"]),
            end_section=row["scale"] == SCALES[-1],
        )
    console.print(table)
    growth_table = Table(
        title="Growth x1 -> x8: t8/t1 (exponent, 1 = linear), tracemalloc peak at x8",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    for name in ("kind", "bytes", *STAGES, "total", "peak MiB"):
        growth_table.add_column(name, justify="left" if name == "kind" else "right")
    for kind, g in document["growth"].items():
        growth_table.add_row(
            kind,
            f"{g['size_ratio']:.2f}",
            *(
                f"{g[f'{s}_ratio']:.2f} ({g[f'{s}_exponent']:.2f})" if f"{s}_ratio" in g else "-"
                for s in (*STAGES, "total")
            ),
            f"{document['peak_mib_x8'][kind]:.1f}",
        )
    console.print(growth_table)
    for line in document["warnings"]:
        console.print(f"[yellow]warning: {line}[/yellow]", highlight=False)
    for line in document["problems"]:
        console.print(f"[red]problem: {line}[/red]", highlight=False)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}" if value < 100 else f"{value:,.1f}"


if __name__ == "__main__":
    sys.exit(main())
