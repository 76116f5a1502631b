"""Building and reading test messages."""

from __future__ import annotations

import email
import smtplib
from email.message import EmailMessage
from email.policy import SMTP, default
from pathlib import Path


def text_message(
    *,
    sender: str,
    to: str,
    subject: str = "Your order",
    body: str = "Hello, your parcel is on its way.\n",
    message_id: str | None = None,
    in_reply_to: str | None = None,
    extra: dict[str, str] | None = None,
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = "Sun, 22 Nov 2026 10:00:00 +0000"
    message["Message-ID"] = message_id or email.utils.make_msgid(domain="client.example")
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
        message["References"] = in_reply_to
    for name, value in (extra or {}).items():
        message[name] = value
    message.set_content(body)
    return message


def send(
    port: int, mail_from: str, rcpts: list[str], data: bytes | EmailMessage
) -> dict[str, tuple[int, bytes]]:
    """Send with smtplib, as a seller's or buyer's client would; returns refused recipients."""
    raw = wire_bytes(data) if isinstance(data, EmailMessage) else data
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        return client.sendmail(mail_from, rcpts, raw)


def data_reply(port: int, mail: EmailMessage) -> tuple[int, str]:
    """One message over SMTP from its From to its To: the reply to DATA. MAIL and RCPT must
    pass, so that what answers is the judgement of the message itself."""
    sender, rcpt = str(mail["From"]), str(mail["To"])
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo()
        assert client.mail(sender)[0] == 250
        assert client.rcpt(rcpt)[0] == 250
        code, text = client.data(wire_bytes(mail))
        return code, text.decode()


def wire_bytes(message: EmailMessage) -> bytes:
    """The message as a mail client puts it on the wire: CRLF line endings."""
    return message.as_bytes(policy=SMTP)


def read(path: Path) -> EmailMessage:
    return read_bytes(path.read_bytes())


def read_bytes(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=default)
    assert isinstance(message, EmailMessage)
    return message
