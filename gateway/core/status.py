"""Every SMTP reply the gateway gives, with its RFC 3463 enhanced status code: the constant
ones, and the builders of those that name a limit, a date or what matched. Nothing else in
the gateway words a reply."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Reply:
    code: int
    enhanced: str
    text: str
    details: tuple[str, ...] = ()

    @property
    def is_success(self) -> bool:
        return 200 <= self.code < 300

    @property
    def is_temporary(self) -> bool:
        return 400 <= self.code < 500

    def with_text(self, text: str) -> Reply:
        return Reply(self.code, self.enhanced, text, self.details)

    def with_details(self, *details: str) -> Reply:
        return Reply(self.code, self.enhanced, self.text, tuple(details))

    def __str__(self) -> str:
        """The reply as sent: one line, or a multi-line reply with the details listed."""
        lines = [self.text, *self.details]
        head = [f"{self.code}-{self.enhanced} {line}" for line in lines[:-1]]
        return "\r\n".join([*head, f"{self.code} {self.enhanced} {lines[-1]}"])


OK = Reply(250, "2.0.0", "OK")
QUEUED = Reply(250, "2.0.0", "Message accepted for delivery")
RCPT_OK = Reply(250, "2.1.5", "Recipient OK")
SENDER_OK = Reply(250, "2.1.0", "Sender OK")

RELAY_DENIED = Reply(
    554, "5.7.1", "Relay access denied: this server accepts mail only for its aliases"
)
UNKNOWN_ALIAS = Reply(550, "5.1.1", "No such recipient here")
BAD_ADDRESS = Reply(501, "5.1.3", "Bad recipient address syntax")
BAD_SENDER_ADDRESS = Reply(501, "5.1.7", "Bad sender address syntax")
FROM_NOT_ONE_MAILBOX = Reply(
    550, "5.6.0", "Message must have one From field naming one address, written unambiguously"
)
FROM_MISMATCH = Reply(
    550, "5.7.1", "Header From must be the same registered mailbox as the envelope sender"
)
MALFORMED = Reply(554, "5.6.0", "Message could not be parsed")
UNPROCESSABLE = Reply(
    554, "5.6.0", "Message could not be processed; it is kept for the operators to examine"
)
LINE_TOO_LONG = Reply(500, "5.5.2", "Line too long")
COMMAND_TOO_LONG = Reply(500, "5.5.2", "Command line too long")
MIME_TOO_DEEP = Reply(554, "5.6.0", "MIME parts are nested too deeply")
TOO_MANY_RECIPIENTS = Reply(452, "4.5.3", "Too many recipients in this transaction")
TOO_MANY_SESSIONS = Reply(421, "4.7.0", "Too many connections from your address, try later")
CONTENT_REFUSED = Reply(
    550, "5.7.1", "Message refused by the marketplace's messaging rules; change what is listed"
)
LEAK_REFUSED = Reply(550, "5.7.1", "Message would reveal a real address; remove it and send again")
SOME_REFUSED = Reply(550, "5.7.1", "Message refused for every recipient")
TOO_BIG = Reply(552, "5.3.4", "Message size exceeds fixed maximum message size")

AUTH_OK = Reply(235, "2.7.0", "Authentication successful")
AUTH_INVALID = Reply(535, "5.7.8", "Authentication credentials invalid")
AUTH_LOCKED = Reply(454, "4.7.0", "Too many failed authentication attempts; try again later")
SENDER_NOT_YOURS = Reply(550, "5.7.1", "Sender address is not one of your registered mailboxes")
NOT_YOUR_BUYER = Reply(
    550, "5.7.1", "You can write only to buyer aliases of your own conversations"
)

# RFC 7372 codes for sender authentication.
NOT_AUTHENTICATED = Reply(
    550,
    "5.7.26",
    "Sender not authenticated: no DKIM signature or SPF pass aligned with the From domain",
)
NO_ALIGNED_DKIM = Reply(
    550, "5.7.22", "Sender not authenticated: no valid DKIM signature of the From domain"
)
NO_ALIGNED_SPF = Reply(
    550, "5.7.23", "Sender not authenticated: SPF does not pass for the From domain"
)
AUTH_CHECK_UNAVAILABLE = Reply(
    451, "4.4.3", "Sender authentication could not be completed (DNS); try again later"
)

# Marketplace rules (SPEC, "The rules"); the texts name the rule and what to do.
SELLER_SUSPENDED = Reply(
    550, "5.7.1", "seller.suspended: your seller account is suspended; nothing is delivered"
)
OVER_QUOTA = Reply(452, "4.7.1", "quota.daily: daily message limit reached")
OVER_QUOTA_PERMANENT = Reply(550, "5.7.1", "quota.daily: daily message limit reached")
OUTSIDE_CONTACT_WINDOW = Reply(550, "5.7.1", "window.contact: outside the contact window")
NO_PRE_PURCHASE = Reply(
    550,
    "5.7.1",
    "window.pre_purchase: this seller does not take questions before a purchase",
)
BUYER_OPTED_OUT = Reply(
    550,
    "5.7.1",
    "optout: the buyer has opted out of messages that are not essential",
)

TEMPORARY_FAILURE = Reply(451, "4.3.0", "Temporary failure, please try again later")
NO_DISK_ROOM = Reply(452, "4.3.1", "Insufficient system storage, please try again later")
IDLE_TIMEOUT = Reply(421, "4.4.2", "Idle too long, closing the connection")
SHUTTING_DOWN = Reply(421, "4.3.2", "Service shutting down, please try again later")
TLS_ALREADY_ACTIVE = Reply(503, "5.5.1", "TLS is already active")  # RFC 3207 4.2


# -- replies that say more ---------------------------------------------------------------


def ascii_text(line: str) -> str:
    """SMTP replies are ASCII: other characters as \\uXXXX, so the sender can still find them."""
    return line.encode("ascii", "backslashreplace").decode("ascii")


def accepted(record_id: int, refused: int = 0) -> Reply:
    """250 for a message stored; `refused`: recipients refused (a DSN tells which)."""
    text = f"Message accepted for delivery as {record_id}"
    if refused:
        text += f"; {refused} recipient(s) refused, a report follows"
    return QUEUED.with_text(text)


def refused_each(reasons: Sequence[tuple[str, Reply]]) -> Reply:
    """Every recipient refused, for different reasons: each named with its own."""
    return SOME_REFUSED.with_details(
        *(
            " ".join((f"{rcpt}: {reply.enhanced}", reply.text, *reply.details))
            for rcpt, reply in reasons
        )
    )


def content_refused(matches: Sequence[tuple[str, str]], help_url: str = "") -> Reply:
    """The content rules refused: each rule with what it found, then where to read more."""
    lines = [f"{rule_id}: {found}" for rule_id, found in matches]
    if help_url:
        lines.append(f"Help: {help_url}")
    return CONTENT_REFUSED.with_details(*(ascii_text(line) for line in lines))


RECIPIENT_SUPPRESSED = Reply(
    550,
    "5.1.1",
    "rcpt.suppressed: the recipient's mailbox is not accepting mail (messages to it bounced)",
)


def recipient_suppressed(until: datetime) -> Reply:
    return RECIPIENT_SUPPRESSED.with_details(
        f"nothing is sent to it until {until:%Y-%m-%d %H:%M} UTC; reach them another way"
    )


def leak_refused(places: str) -> Reply:
    return LEAK_REFUSED.with_details(f"Your address appears in: {places}")


def over_quota(limit: int, hours_to_reset: int, permanent: bool) -> Reply:
    reply = OVER_QUOTA_PERMANENT if permanent else OVER_QUOTA
    return reply.with_details(
        f"your limit is {limit} messages a day; it resets at 00:00 UTC "
        f"(in about {hours_to_reset} h)"
    )


def outside_contact_window(why: str) -> Reply:
    return OUTSIDE_CONTACT_WINDOW.with_details(why)


def opted_out(hint: str) -> Reply:
    return BUYER_OPTED_OUT.with_details(hint)


FROM_CASE_DIFFERS = FROM_MISMATCH.with_text(
    "Header From differs from a registered mailbox in letter case; write it exactly as registered"
)


def from_not_registered(party: str) -> Reply:
    """`party`: "the seller" or "the buyer", whose registered mailbox the alias accepts."""
    return FROM_MISMATCH.with_text(
        f"Header From is not registered for this conversation: this alias accepts mail only "
        f"from {party}'s registered mailbox"
    )
