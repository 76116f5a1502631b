"""The envelope of a message fetched from a mailbox, as the server that delivered it wrote it
into the header: the alias it was for (Delivered-To, X-Original-To or To, as configured)
and its sender (Return-Path). Pure."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses

from gateway.core.addresses import AddressError, parse_mailbox
from gateway.pipeline.dsn import header_block

_HEADERS = BytesHeaderParser(policy=compat32)


@dataclass(frozen=True, slots=True)
class MailboxEnvelope:
    sender: str | None  # None: the sender header is missing ("" is the null sender <>)
    recipients: tuple[str, ...]  # addresses on the alias domain, in order, once each
    message_id: str | None


def _is_mailbox(text: str) -> bool:
    try:
        parse_mailbox(text)
    except AddressError:
        return False
    return True


def digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def read_envelope(
    raw: bytes,
    alias_domain: str,
    recipient_headers: list[str],
    sender_header: str,
    mailbox_user: str = "",
) -> MailboxEnvelope:
    """The recipients are taken from the first of `recipient_headers` whose topmost field
    names an address on the alias domain (every such address in it); the mailbox's own
    address (a catch-all on the alias domain) is never one."""
    header = _HEADERS.parsebytes(header_block(raw))  # the body is no business of this
    own = mailbox_user.lower()
    suffix = "@" + alias_domain.lower()
    recipients: list[str] = []
    for name in recipient_headers:
        # The topmost field only: the delivering server writes its own on top, and any
        # below it came with the message, written by whoever sent it.
        values = [str(v) for v in header.get_all(name, [])[:1]]
        for _, address in getaddresses(values):
            address = address.strip().lower()
            if address.endswith(suffix) and address != own and address not in recipients:
                recipients.append(address)
        if recipients:
            break
    sender = None
    value = header.get(sender_header)
    if value is not None:
        text = str(value).strip()
        if text in ("<>", ""):
            sender = ""
        else:
            found = getaddresses([text])
            sender = found[0][1].strip() if found and found[0][1] else None
            if sender is not None and not _is_mailbox(sender):
                sender = None  # not an address SMTP would take in MAIL FROM: no sender
    message_id = header.get("Message-ID")
    if message_id is not None and len(str(message_id)) > 998:  # RFC 5322 2.1.1: no such id
        message_id = None
    return MailboxEnvelope(
        sender=sender,
        recipients=tuple(recipients),
        message_id=(" ".join(str(message_id).split()) or None) if message_id else None,
    )
