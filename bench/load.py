"""The load: the message sent, the clients that send it, and the figures taken from them."""

from __future__ import annotations

import asyncio
import math
import secrets
import textwrap
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate
from pathlib import Path

import aiosmtplib

from bench.sink import UNTAGGED, clock

SEND_TIMEOUT = 30.0  # seconds for one SMTP command; a stuck server fails a message, not the run
_RUN_NONCE = secrets.token_hex(6)  # keeps Message-IDs unique across runs into one database
# A signature's size and shape, folded as signers fold it (not a valid signature).
_FAKE_DKIM = "\n\t".join(
    [
        "v=1; a=rsa-sha256; c=relaxed/relaxed; d=shop.example;",
        "s=mail2026; h=from:to:subject:date:message-id:user-agent;",
        "bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;",
        "b=dGhpcyBpcyBub3QgYSByZWFsIHNpZ25hdHVyZSwganVzdCBpdHMgc2l6ZQ",
        *["cyBpcyBub3QgYSByZWFsIHNpZ25hdHVyZSwganVzdCBpdHMgc2l6ZQdGhpcyBpcyBub3Qg"] * 5,
    ]
)

# Paragraphs are rewrapped at 72 columns, as a mail client would: the body stays 7bit.
_OPENING = """\
Hello,

Thank you for your order #ORDER at Bench Shop. Good news: everything you ordered has been \
packed this morning and handed to the carrier. You should receive it within three to five \
working days, depending on where you live and on how busy the carrier is this week.

Here is what is in the parcel:

  Qty  Item                                        Price
  ---  ------------------------------------------  ---------
    2  Hand-thrown stoneware mug, sage glaze       EUR 38.00
    1  Linen tea towel, natural, 50 x 70 cm        EUR 14.50
    1  Loose-leaf sencha, 100 g tin                EUR 12.90
    3  Beeswax food wrap, assorted sizes           EUR 21.00
    1  Bamboo tea scoop                            EUR  6.40
  ---  ------------------------------------------  ---------
       Shipping (tracked, standard)                EUR  4.90
       Total                                       EUR 97.70

Your tracking number is 00340434161234567890. The carrier's page usually starts to show the \
parcel a few hours after we hand it over, so please do not worry if the number is not found \
straight away. If it still shows nothing tomorrow evening, just reply to this message and I \
will chase it with them.

A few notes on the items, since several customers have asked:
"""
# Care notes: a message of another size has more or fewer of them (see template()).
_NOTES = (
    """\
The stoneware mugs are fired twice and are safe in the dishwasher and the microwave, but the \
glaze keeps its colour longer if you wash them by hand. Small variations in the glaze and tiny \
pinholes are part of the handmade process and not a defect; every mug is a little different.""",
    """\
The linen tea towel will feel stiff at first. Wash it at 40 degrees before the first use and \
it will soften with every wash. Please do not use fabric softener, which makes linen less \
absorbent. It can go in the tumble dryer on a low setting, but it lasts longer dried on a line.""",
    """\
The sencha is from this spring's first harvest. Use water at about 70 to 80 degrees rather \
than boiling water, and steep for one minute; the leaves can be infused two or three times. \
Keep the tin closed and away from light and strong smells, and it stays fresh for six months.""",
    """\
The beeswax wraps shape themselves with the warmth of your hands. Rinse them in cool water \
with a little mild soap and let them dry in the air; hot water melts the wax. With normal \
care they last about a year, after which they can go in the compost. Please keep them away \
from raw meat and from the oven.""",
)
_CLOSING = """\
If anything arrives damaged, please take a photo of the item and of the box before throwing \
the packaging away, and reply to this message with the photos. I will send a replacement or \
a refund straight away; you do not need to send broken pieces back. For everything else you \
have thirty days to return unused items in their original packaging. Just write to me first \
so that I can tell you the return address and the easiest way to send it.

We are a very small shop (two people and a kiln), so it sometimes takes us a day to answer, \
especially on market weekends. Thank you for your patience and for supporting handmade work. \
The mugs are dishwasher safe, but the glaze keeps its sheen longer if you wash them by \
hand; the tea towel may shrink a little in its first hot wash.

If something is not as you hoped, please tell me: I would much rather put it right. Could \
you also let me know whether the parcel may be left with a neighbour if you are out?

Warm regards,

Mira Okafor
Bench Shop - handmade kitchen and tea goods
Workshop open Thursday to Saturday, 10:00 to 17:00
MAILBOX
"""
_TOKEN, _ORDER = b"@@TOKEN@@", b"@@ORDER@@"  # placeholders in the template


def _wrapped(text: str) -> str:
    """Paragraphs with a line over 72 columns filled to 72; the rest (table, signature) kept."""
    paragraphs = text.split("\n\n")
    return "\n\n".join(
        textwrap.fill(p, 72) if max(map(len, p.splitlines())) > 72 else p for p in paragraphs
    )


@dataclass(frozen=True, slots=True)
class Route:
    """Who sends to whom: the envelope and the To header of one message."""

    mail_from: str
    rcpt: str


@dataclass(frozen=True, slots=True)
class Job:
    token: int
    route: Route
    content: bytes


@dataclass(frozen=True, slots=True)
class Sample:
    """One message from the client's side: when it was sent, and the 250 or the error."""

    token: int
    started: float
    finished: float
    error: str | None = None


def body(notes: int = len(_NOTES)) -> str:
    """The order notice's text with `notes` care notes, taken in turn (4: the ~5 KB one)."""
    chosen = [_NOTES[n % len(_NOTES)] for n in range(notes)]
    return "\n\n".join([_OPENING.rstrip("\n"), *chosen, _CLOSING])


def template(route: Route, notes: int = len(_NOTES)) -> bytes:
    """A plain-text order notice from the seller (~5 KB with the default `notes`), with
    placeholders for the token."""
    message = EmailMessage()
    # What a provider would add in front of a seller's message (the gateway drops them).
    message["Received"] = (
        "from smtp.shop.example (smtp.shop.example [198.51.100.7]) by mx.provider.example"
        " with ESMTPS id 4Xb2Qk1mZz9sN; " + formatdate()
    )
    message["Received"] = "from [192.0.2.10] by smtp.shop.example with ESMTPSA; " + formatdate()
    message.set_raw("DKIM-Signature", _FAKE_DKIM)
    message["From"] = f"Bench Shop <{route.mail_from}>"
    message["To"] = route.rcpt
    message["Subject"] = "Your order #@@ORDER@@ has shipped [bench:@@TOKEN@@]"
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = f"<bench.@@TOKEN@@.{_RUN_NONCE}@shop.example>"
    message["User-Agent"] = "Bench Shop Mailer 2.3"
    text = _wrapped(body(notes)).replace("ORDER", "@@ORDER@@").replace("MAILBOX", route.mail_from)
    message.set_content(text, cte="7bit")  # 7bit: the placeholders can be replaced as bytes
    return message.as_bytes(policy=SMTP)


def message_bytes(token: int, route_template: bytes) -> bytes:
    """The message tagged `[bench:TOKEN]` in its Subject."""
    order = str(100000 + token).encode()
    return route_template.replace(_TOKEN, str(token).encode()).replace(_ORDER, order)


def build_jobs(count: int, routes: Sequence[Route], first: int = 0) -> list[Job]:
    """All messages, built before the clock starts, tagged `first` onwards; routes are used
    in turn."""
    templates = [template(route) for route in routes]
    jobs = []
    for token in range(first, first + count):
        turn = token % len(routes)
        jobs.append(Job(token, routes[turn], message_bytes(token, templates[turn])))
    return jobs


async def run_clients(port: int, jobs: Sequence[Job], clients: int) -> list[Sample]:
    """`clients` connections to 127.0.0.1:port, each sending the next unsent job in turn."""
    pending = iter(jobs)  # shared: a fast connection takes more messages than a slow one
    samples: list[Sample] = []
    await asyncio.gather(*(_client(port, pending, samples) for _ in range(clients)))
    return samples


async def _client(port: int, pending: Iterator[Job], samples: list[Sample]) -> None:
    smtp = aiosmtplib.SMTP(
        hostname="127.0.0.1", port=port, timeout=SEND_TIMEOUT, local_hostname="client.bench.test"
    )
    try:
        for job in pending:
            samples.append(await _send(smtp, job))
    finally:
        if smtp.is_connected:
            try:
                await smtp.quit()
            except aiosmtplib.SMTPException:
                smtp.close()


async def _send(smtp: aiosmtplib.SMTP, job: Job) -> Sample:
    """One message on the client's connection; (re)connects first if it is not open."""
    if not smtp.is_connected:
        try:
            await smtp.connect()
        except (aiosmtplib.SMTPException, OSError) as error:
            now = clock()
            return Sample(job.token, now, now, f"connect: {describe(error)}")
    started = clock()
    try:
        await smtp.sendmail(job.route.mail_from, [job.route.rcpt], job.content)
    except (aiosmtplib.SMTPException, OSError) as error:
        return Sample(job.token, started, clock(), describe(error))
    return Sample(job.token, started, clock())


def describe(error: BaseException) -> str:
    """A failed exchange in one line: the server's reply, or the exception."""
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused) and error.recipients:
        error = error.recipients[0]
    if isinstance(error, aiosmtplib.SMTPResponseException):
        return f"{error.code} {error.message}"
    return f"{type(error).__name__}: {error}"


def read_arrivals(path: Path, offset: int) -> tuple[int, list[tuple[int, float]]]:
    """The lines bench/sink.py has added to its arrival file since `offset`, as (token,
    seconds), and the offset to read on from."""
    if not path.exists():
        return offset, []
    with path.open("rb") as file:
        file.seek(offset)
        data = file.read()
    complete = data[: data.rfind(b"\n") + 1]  # a line still being written waits
    arrived = []
    for line in complete.splitlines():
        token, _, seconds = line.partition(b" ")
        arrived.append((int(token), float(seconds)))
    return offset + len(complete), arrived


@dataclass
class Arrivals:
    """Reads the sink's arrival file as it grows: first arrival time of each token."""

    path: Path
    times: dict[int, float] = field(default_factory=dict)
    duplicates: int = 0
    untagged: int = 0
    _offset: int = 0

    @classmethod
    def from_now(cls, path: Path) -> Arrivals:
        """Only the arrivals written to `path` from now on: one sink, several loads in turn."""
        return cls(path, _offset=path.stat().st_size if path.exists() else 0)

    def poll(self) -> None:
        self._offset, arrived = read_arrivals(self.path, self._offset)
        for token, seconds in arrived:
            self._record(token, seconds)

    def _record(self, token: int, arrived: float) -> None:
        if token == UNTAGGED:
            self.untagged += 1
        elif token in self.times:
            self.duplicates += 1
        else:
            self.times[token] = arrived

    async def wait_for(self, tokens: set[int]) -> None:
        """Poll until every token has arrived; the caller bounds the wait."""
        while True:
            self.poll()
            if tokens <= self.times.keys():
                return
            await asyncio.sleep(0.05)


def percentile(values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile: a value that was actually observed."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


@dataclass(frozen=True, slots=True)
class Figures:
    """What one run measured, in plain numbers (seconds, counts)."""

    sent: int
    accepted: int
    errors: dict[str, int]
    delivered: int
    lost: int
    duplicates: int
    unexpected: int  # arrived although the client saw no 250 (e.g. its wait timed out)
    untagged: int
    accept_seconds: float
    end_to_end_seconds: float | None
    accept_latencies: list[float]
    end_to_end_latencies: list[float]

    @property
    def accept_rate(self) -> float | None:
        return self.accepted / self.accept_seconds if self.accept_seconds > 0 else None

    @property
    def end_to_end_rate(self) -> float | None:
        seconds = self.end_to_end_seconds
        return self.delivered / seconds if seconds else None


def figures(samples: Sequence[Sample], arrivals: Arrivals) -> Figures:
    accepted = [s for s in samples if s.error is None]
    arrived = [s for s in accepted if s.token in arrivals.times]
    first_start = min((s.started for s in samples), default=0.0)
    last_250 = max((s.finished for s in accepted), default=first_start)
    last_arrival = max((arrivals.times[s.token] for s in arrived), default=None)
    return Figures(
        sent=len(samples),
        accepted=len(accepted),
        errors=dict(Counter(s.error for s in samples if s.error is not None)),
        delivered=len(arrived),
        lost=len(accepted) - len(arrived),
        duplicates=arrivals.duplicates,
        unexpected=len(arrivals.times.keys() - {s.token for s in accepted}),
        untagged=arrivals.untagged,
        accept_seconds=last_250 - first_start,
        end_to_end_seconds=None if last_arrival is None else last_arrival - first_start,
        accept_latencies=[s.finished - s.started for s in accepted],
        end_to_end_latencies=[arrivals.times[s.token] - s.started for s in arrived],
    )
