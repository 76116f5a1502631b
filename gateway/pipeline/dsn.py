"""RFC 3464 delivery status notifications that reveal nothing of the other party."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from email.message import EmailMessage, Message, MIMEPart
from email.utils import format_datetime

from gateway.core.addresses import ADDRESS_IN_TEXT, new_alias_token, new_message_id
from gateway.core.model import ArchiveEntry, BounceContext, Delivery, Direction
from gateway.core.status import OK
from gateway.pipeline.parse import SMTP_POLICY


@dataclass(frozen=True, slots=True)
class FailedRecipient:
    alias: str  # the address the sender wrote to: the only name of the other party it knows
    status: str  # RFC 3463 code, e.g. "5.1.1"
    diagnostic: str


def scrub_addresses(text: str, alias_domain: str, replacement: str) -> str:
    """Remote servers name the real recipient in their replies: never pass that on."""

    def _replace(match: re.Match[str]) -> str:
        address = match.group(0)
        return address if address.lower().endswith("@" + alias_domain) else replacement

    return ADDRESS_IN_TEXT.sub(_replace, " ".join(text.split()))


@dataclass(frozen=True, slots=True)
class Report:
    """What a DSN received from the recipient's side says about its first recipient."""

    action: str  # failed | delayed | delivered | relayed | expanded (RFC 3464 2.3.3)
    status: str
    diagnostic: str


def read_report(message: EmailMessage) -> Report | None:
    """The first per-recipient block of a multipart/report DSN; None if it is no DSN."""
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        blocks = part.get_payload()
        if not isinstance(blocks, list):
            return None
        for block in blocks[1:]:
            if not isinstance(block, Message):
                continue
            action = str(block.get("Action", "")).strip().lower()
            if action:
                diagnostic = str(block.get("Diagnostic-Code", "")).partition(";")[2].strip()
                return Report(action, str(block.get("Status", "")).strip(), diagnostic)
    return None


def header_block(raw: bytes) -> bytes:
    """The header section of a message as received."""
    for separator in (b"\r\n\r\n", b"\n\n"):
        head, found, _ = raw.partition(separator)
        if found:
            return head + b"\r\n"
    return raw


def build_dsn(
    *,
    alias_domain: str,
    to: str,
    message_id: str,
    arrival: datetime,
    now: datetime,
    original_headers: bytes,
    failed: Sequence[FailedRecipient],
) -> bytes:
    report = EmailMessage(policy=SMTP_POLICY)
    report["From"] = f"Mail Delivery System <mailer-daemon@{alias_domain}>"
    report["To"] = to
    report["Subject"] = "Undelivered Mail Returned to Sender"
    report["Date"] = format_datetime(now)
    report["Message-ID"] = message_id
    report["Auto-Submitted"] = "auto-replied"
    report["MIME-Version"] = "1.0"
    report.set_type("multipart/report")
    report.set_param("report-type", "delivery-status")

    lines = ["Your message could not be delivered to the following recipient(s):", ""]
    for item in failed:
        lines += [f"  {item.alias}", f"    {item.status}: {item.diagnostic}", ""]
    lines.append("This report was written by the marketplace's mail gateway.")
    explanation = MIMEPart(policy=SMTP_POLICY)
    explanation.set_content("\n".join(lines) + "\n")

    per_message = Message(policy=SMTP_POLICY)
    per_message["Reporting-MTA"] = f"dns; {alias_domain}"
    per_message["Arrival-Date"] = format_datetime(arrival)
    blocks: list[Message | str] = [per_message]
    for item in failed:
        block = Message(policy=SMTP_POLICY)
        block["Final-Recipient"] = f"rfc822; {item.alias}"
        block["Action"] = "failed"
        block["Status"] = item.status
        block["Diagnostic-Code"] = f"smtp; {item.diagnostic}"
        blocks.append(block)
    status = Message(policy=SMTP_POLICY)
    status["Content-Type"] = "message/delivery-status"
    status.set_payload(blocks)

    headers = MIMEPart(policy=SMTP_POLICY)
    headers["Content-Type"] = "text/rfc822-headers"
    headers.set_payload(original_headers.decode("ascii", errors="surrogateescape"))

    report.set_payload([explanation, status, headers])
    return report.as_bytes(policy=SMTP_POLICY)


def delivery_failed_notice(
    context: BounceContext,
    code: str,
    diagnostic: str,
    *,
    alias_domain: str,
    now: datetime,
    session_id: str | None = None,
) -> ArchiveEntry:
    """The DSN telling a delivery's sender that it failed, in the sender's own terms."""
    notice = failure_notice(
        alias_domain=alias_domain,
        pair_id=context.pair_id,
        original_sender=context.original_sender,
        original_headers=context.original_headers,
        arrival=context.received_at,
        now=now,
        failed=[FailedRecipient(context.alias_written_to, code, diagnostic)],
        session_id=session_id,
    )
    return replace(notice, about_id=context.record_id)


def failure_notice(
    *,
    alias_domain: str,
    pair_id: int | None,
    original_sender: str,
    original_headers: bytes,
    arrival: datetime,
    now: datetime,
    failed: Sequence[FailedRecipient],
    session_id: str | None = None,
) -> ArchiveEntry:
    """A DSN to the sender's real address, as an archive entry with its delivery."""
    message_id = new_message_id(alias_domain)
    content = build_dsn(
        alias_domain=alias_domain,
        to=original_sender,
        message_id=message_id,
        arrival=arrival,
        now=now,
        original_headers=original_headers,
        failed=failed,
    )
    return ArchiveEntry(
        direction=Direction.NOTICE,
        pair_id=pair_id,
        envelope_from="",
        recipient=original_sender,
        received_at=now,
        raw_received=None,
        raw_delivered=content,
        gateway_message_id=message_id,
        original_message_id=None,
        reply=OK,
        delivery=Delivery(envelope_from="", recipient=original_sender, token=new_alias_token()),
        session_id=session_id,
    )
