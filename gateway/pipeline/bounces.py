"""What came back to a delivery's bounce address: a report that it failed for good, one that
it is only delayed, an auto-reply of its recipient, or something else. Pure.

RFC 3464 reports are read directly (pipeline/dsn.py); for the many servers that send other
shapes, GNU Mailman's detectors (flufl.bounce) tell permanent from temporary failures.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import EmailMessage
from enum import StrEnum

import flufl.bounce

from gateway.pipeline.dsn import read_report, scrub_addresses
from gateway.pipeline.parse import mime_depth, parse_tree

# Auto-generated mail that says it answers for someone away (RFC 3834 does not make the
# kind explicit: "auto-generated" is used for vacation notices too).
_AWAY_SUBJECT = re.compile(
    r"^\s*(?:out of (?:the )?office|automatic reply|auto(?:matic)?[- ]?(?:reply|response)|"
    r"auto:|autoreply|away|vacation|abwesenheit|r[ée]ponse automatique|respuesta autom[aá]tica)",
    re.IGNORECASE,
)


# What a sender is told where the remote server's own words cannot be passed on.
REMOTE_REFUSED = "the recipient's mail server did not accept the message"


class Returned(StrEnum):
    FAILED = "failed"  # the delivery failed: tell its sender, count it against the address
    DELAYED = "delayed"  # a warning: nothing to do, the receiving server goes on trying
    AUTO_REPLY = "auto_reply"  # the recipient's out-of-office: relayed as its reply
    OTHER = "other"  # archived, nothing more


@dataclass(frozen=True, slots=True)
class ReturnReport:
    kind: Returned
    status: str = ""  # RFC 3463: the report's own code, or 5.0.0 where it gives none
    diagnostic: str = ""  # the remote server's text, as it wrote it (never passed on raw)

    @property
    def hard(self) -> bool:
        return self.kind is Returned.FAILED and is_hard(self.status)


def is_hard(status: str) -> bool:
    """A failure that says the address itself cannot take mail (5.1.x: no such mailbox or
    domain; 5.2.1: disabled): what, repeated, suppresses the address. A full mailbox or a
    refusal for content says nothing about the address."""
    return status.startswith("5.1.") or status == "5.2.1"


def classify_returned(raw: bytes, max_depth: int = 100) -> ReturnReport:
    """What the bytes sent back to a bounce address are; OTHER if they cannot be read."""
    try:
        message = parse_tree(raw)
        if mime_depth(message) > max_depth:
            return ReturnReport(Returned.OTHER)
        return classify(message)
    except Exception:  # the parser and the detectors on hostile bytes: archived as it is
        return ReturnReport(Returned.OTHER)


def classify(message: EmailMessage) -> ReturnReport:
    report = read_report(message)
    if report is not None:
        if report.action == "failed":
            code = report.status if report.status.startswith("5.") else "5.0.0"
            return ReturnReport(Returned.FAILED, code, report.diagnostic)
        return ReturnReport(Returned.DELAYED, report.status, report.diagnostic)
    if is_auto_reply(message):
        return ReturnReport(Returned.AUTO_REPLY)
    temporary, permanent = flufl.bounce.all_failures(message)
    if permanent:
        # The detectors find the addresses a bounce names, not its code: a permanent one of
        # those shapes says the mailbox is unknown ("user unknown", "no such user").
        return ReturnReport(Returned.FAILED, "5.1.1")
    if temporary:
        return ReturnReport(Returned.DELAYED, "4.0.0")
    return ReturnReport(Returned.OTHER)


_DAEMONS = ("mailer-daemon@", "postmaster@")


def is_auto_reply(message: EmailMessage) -> bool:
    """An automatic answer of a person (RFC 3834; and the common vacation headers), not a
    server's report about a delivery."""
    if message.get_content_type() == "multipart/report" or "X-Failed-Recipients" in message:
        return False
    sender = str(message.get("From", "")).lower()
    if any(daemon in sender for daemon in _DAEMONS):
        return False
    submitted = str(message.get("Auto-Submitted", "")).strip().lower()
    if submitted.startswith("auto-replied"):
        return True
    if "X-Autoreply" in message or "X-Autorespond" in message:
        return True
    if str(message.get("Precedence", "")).strip().lower() == "auto_reply":
        return True
    subject = str(message.get("Subject", ""))
    return submitted.startswith("auto-generated") and _AWAY_SUBJECT.match(subject) is not None


def safe_diagnostic(text: str, real_recipient: str, alias_domain: str, fallback: str) -> str:
    """A remote server's text as the sender may read it: its addresses replaced, and none of
    it at all if it still names the real recipient (its mailbox name on its own, say)."""
    scrubbed = scrub_addresses(text, alias_domain, "the recipient")
    local = real_recipient.rpartition("@")[0].strip('"').lower()
    if not scrubbed or (len(local) >= 3 and local in scrubbed.lower()):
        return fallback
    return scrubbed
