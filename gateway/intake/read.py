"""Read: a message's bytes parsed once, and what it says read once, for every recipient."""

from __future__ import annotations

from dataclasses import replace

from gateway.core import status
from gateway.core.model import Violation
from gateway.intake.model import Received
from gateway.pipeline.authresults import stamp
from gateway.pipeline.content import read_content
from gateway.pipeline.parse import MessageFormatError, MimeTooDeep, parse_message

MIME_TOO_DEEP = Violation("message.mime_depth", status.MIME_TOO_DEEP)


def read(arrived: Received, max_depth: int, reads_content: bool) -> Received:
    """`arrived` parsed (None if it cannot be), its content read if a rule needs it, and
    the bytes to archive (with the sender authentication's results, if it was checked)."""
    received = arrived
    if arrived.authentication is not None:
        archived = stamp(arrived.raw, arrived.authentication, arrived.alias_domain)
        received = replace(received, archived_raw=archived)
    try:
        received = replace(received, parsed=parse_message(arrived.raw, max_depth))
    except MimeTooDeep:
        return replace(received, unreadable=MIME_TOO_DEEP)
    except MessageFormatError:
        return received
    if reads_content and received.parsed is not None:
        received = replace(received, content=read_content(received.parsed))
    return received
