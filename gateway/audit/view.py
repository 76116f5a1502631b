"""An archive record as an auditor reads it: its decision, the rules that hit and what they
quoted (the reply names it), and both versions of the message, headers decoded and text as
the reader saw it. `archive show` and the console's pages read records through here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Connection

from gateway.pipeline.content import read_content
from gateway.pipeline.parse import MessageFormatError, header_text, parse_message
from gateway.storage import archive
from gateway.storage.archive import ArchivedMessage
from gateway.storage.schema import Message


@dataclass(frozen=True, slots=True)
class Version:
    """One version of a message (as received or as delivered)."""

    headers: list[tuple[str, str]]
    subject: str
    text: str  # every text block, decoded, in order
    size: int


@dataclass(frozen=True, slots=True)
class RecordView:
    message_id: int
    pair_id: int | None
    direction: str
    received_at: str
    verdict: str
    reply: str  # the SMTP reply: a refusal names each rule and quotes what it matched
    rules: list[str]
    shadow_rules: list[str]
    policy_version: str
    gateway_message_id: str
    original_message_id: str | None
    envelope_from: str
    recipient: str
    log_seq: int | None
    purged: bool
    received: Version | None
    delivered: Version | None

    @property
    def subject(self) -> str:
        for version in (self.received, self.delivered):
            if version is not None and version.subject:
                return version.subject
        return ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def read_version(raw: bytes | None) -> Version | None:
    """One version's headers (decoded) and text, from one parse of its bytes."""
    if raw is None:
        return None
    try:
        parsed = parse_message(raw)
    except (MessageFormatError, ValueError, LookupError):
        return Version([], "", raw.decode("utf-8", "replace"), len(raw))
    tree = parsed.message
    headers = []
    for name, value in tree.raw_items():
        try:
            headers.append((name, header_text(str(tree.policy.header_fetch_parse(name, value)))))
        except Exception:  # an undecodable header is shown as it was written
            headers.append((name, header_text(str(value))))
    try:
        content = read_content(parsed)
    except (MessageFormatError, ValueError, LookupError):
        return Version(headers, "", "", len(raw))
    text = "\n\n".join(
        "\n".join(part for part in (block.text, block.quoted) if part)
        for block in content.blocks
        if block.source != "subject"
    )
    return Version(headers, content.subject, text, len(raw))


def _split(listed: str) -> list[str]:
    return [item for item in listed.split(",") if item]


def record_view(record: ArchivedMessage) -> RecordView:
    return RecordView(
        message_id=record.id,
        pair_id=record.pair_id,
        direction=record.direction,
        received_at=record.received_at.isoformat(),
        verdict=record.verdict,
        reply=record.smtp_reply,
        rules=_split(record.rule_hits),
        shadow_rules=_split(record.shadow_hits),
        policy_version=record.policy_version,
        gateway_message_id=record.gateway_message_id,
        original_message_id=record.original_message_id,
        envelope_from=record.envelope_from,
        recipient=record.recipient,
        log_seq=record.log_seq,
        purged=record.purged_at is not None,
        received=read_version(record.raw_received),
        delivered=read_version(record.raw_delivered),
    )


def read_record(connection: Connection, message_id: int) -> RecordView | None:
    found = archive.read_records(connection, Message.id == message_id)
    return record_view(found[0]) if found else None


def read_conversation(connection: Connection, pair_id: int) -> Sequence[RecordView]:
    """Every record of a pair in the order the messages were exchanged."""
    records = archive.read_records(connection, Message.pair_id == pair_id)
    return [record_view(r) for r in sorted(records, key=lambda r: (r.received_at, r.id))]
