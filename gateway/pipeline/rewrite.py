"""Build the message the other party receives: new headers, the sender's body, no leaks."""

from __future__ import annotations

import copy
from datetime import datetime
from email.headerregistry import Address
from email.utils import format_datetime

from gateway.core.message import ParsedMessage
from gateway.core.model import Conversation
from gateway.pipeline.leakguard import LeakFound, LeakGuard
from gateway.pipeline.parse import SMTP_POLICY
from gateway.pipeline.threading import map_references

# Headers that describe the body, and so travel with it.
_BODY_HEADERS = (
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Content-Disposition",
    "Content-Language",
)


def leak_guard(parsed: ParsedMessage, conversation: Conversation) -> LeakGuard:
    """Every real address the sender is known by, or revealed in the message's headers."""
    alias_domain = conversation.sender.alias.rpartition("@")[2]
    candidates = (
        *conversation.sender.registered,
        *parsed.from_addresses,
        *parsed.self_addresses,
    )
    addresses = [a for a in candidates if a.rpartition("@")[2].lower() != alias_domain]
    return LeakGuard(addresses, conversation.sender.alias)


def rewrite(
    parsed: ParsedMessage, conversation: Conversation, gateway_id: str, now: datetime
) -> bytes:
    """The delivered message, or LeakFound if a real address of the sender would remain."""
    message = copy.deepcopy(parsed.message)
    guard = leak_guard(parsed, conversation)
    guard.scrub_inline_text(message)

    source = {name.lower(): value for name, value in reversed(list(message.raw_items()))}
    for name in set(message.keys()):
        del message[name]

    sender = conversation.sender
    local, _, domain = sender.alias.partition("@")
    message["From"] = Address(display_name=sender.display_name, username=local, domain=domain)
    message["To"] = conversation.recipient.delivery_address
    if "subject" in source:
        subject = str(SMTP_POLICY.header_factory("subject", str(source["subject"])))
        scrubbed = guard.scrub_text(subject)
        if scrubbed == subject:
            message.set_raw("Subject", source["subject"])
        else:
            message["Subject"] = scrubbed
    if "date" in source:
        message.set_raw("Date", source["date"])
    else:
        message["Date"] = format_datetime(now)
    message["Message-ID"] = gateway_id
    in_reply_to = map_references(parsed.in_reply_to, conversation.thread, sender.side)
    references = map_references(parsed.references, conversation.thread, sender.side)
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to[0]
    if references or in_reply_to:
        message["References"] = " ".join(dict.fromkeys((*references, *in_reply_to[:1])))
    message["MIME-Version"] = "1.0"
    for name in _BODY_HEADERS[1:]:
        if name.lower() in source:
            message.set_raw(name, source[name.lower()])

    content = message.as_bytes(policy=SMTP_POLICY)
    places = guard.find(message, content)
    if places:
        raise LeakFound(places)
    return content
