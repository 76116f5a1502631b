"""The one place that parses, normalises and builds addresses and aliases."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

ALIAS_TOKEN_LENGTH = 16  # 16 x 5 bits = 80 bits from secrets
_ALIAS_TOKEN = re.compile(rf"^[a-z2-7]{{{ALIAS_TOKEN_LENGTH}}}$")
BOUNCE_PREFIX = "bounce-"

# RFC 5321 Mailbox in its common form: dot-atom or quoted local part, domain or literal.
_DOT_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_QUOTED = r'"(?:[^"\\\r\n]|\\.)*"'
_DOMAIN = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)*[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_MAILBOX = re.compile(rf"^(?P<local>{_DOT_ATOM}|{_QUOTED})@(?P<domain>{_DOMAIN})$")


# Anything shaped like an address inside free text (remote replies, error messages).
ADDRESS_IN_TEXT = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")


class AddressError(ValueError):
    """Not a mailbox this gateway can use."""


@dataclass(frozen=True, slots=True)
class Mailbox:
    """local@domain with the domain lowercased (domains are case-insensitive; local parts
    are compared exactly, RFC 5321 2.4)."""

    local: str
    domain: str

    def __str__(self) -> str:
        return f"{self.local}@{self.domain}"


def parse_mailbox(text: str) -> Mailbox:
    """Parse an addr-spec as it appears in MAIL FROM / RCPT TO or a registry command."""
    candidate = text.strip()
    if candidate.startswith("<") and candidate.endswith(">"):
        candidate = candidate[1:-1]
    match = _MAILBOX.match(candidate)
    if match is None or len(candidate) > 254 or len(match["local"]) > 64:
        raise AddressError(f"not a valid mailbox: {text!r}")
    return Mailbox(match["local"], match["domain"].lower())


def normalise(text: str) -> str:
    """The stored, comparable form of an address."""
    return str(parse_mailbox(text))


def new_alias_token() -> str:
    """80 bits from secrets, base32 (RFC 4648) in lowercase: exactly 16 characters."""
    return base64.b32encode(secrets.token_bytes(ALIAS_TOKEN_LENGTH * 5 // 8)).decode().lower()


def alias_token_of(mailbox: Mailbox, alias_domain: str) -> str | None:
    """The alias token if `mailbox` is shaped like one of our aliases, else None."""
    if mailbox.domain != alias_domain:
        return None
    token = mailbox.local.lower()
    return token if _ALIAS_TOKEN.match(token) else None


class BounceCheck(StrEnum):
    VALID = "valid"
    FORGED = "forged"  # shaped like a bounce address, but not signed by this gateway
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class BounceAddress:
    token: str
    check: BounceCheck


# bounce-<delivery token>-<hour it expires, since the epoch>-<HMAC of both, 50 bits>
_VERP_LOCAL = re.compile(
    rf"^{BOUNCE_PREFIX}(?P<token>[a-z2-7]{{{ALIAS_TOKEN_LENGTH}}})"
    r"-(?P<hour>\d{1,10})-(?P<mac>[a-z2-7]{10})$"
)
_SECONDS_PER_HOUR = 3600


@dataclass(frozen=True, slots=True)
class BounceSigner:
    """VERP envelope senders that name one delivery and carry an HMAC and an expiry, so that
    a report can be tied to the delivery it is about and nobody can make one up."""

    key: bytes
    valid_for: timedelta
    alias_domain: str

    def address(self, token: str, now: datetime) -> str:
        """The envelope sender of a delivery attempt made at `now`; valid for `valid_for`
        (rounded up to the hour)."""
        expires = now + self.valid_for
        hour = -(-int(expires.timestamp()) // _SECONDS_PER_HOUR)
        return f"{BOUNCE_PREFIX}{token}-{hour}-{self._mac(token, hour)}@{self.alias_domain}"

    def read(self, mailbox: Mailbox, now: datetime) -> BounceAddress | None:
        """What a recipient address says as a bounce address; None if it is not shaped as one."""
        local = mailbox.local.lower()
        if mailbox.domain != self.alias_domain or not local.startswith(BOUNCE_PREFIX):
            return None
        match = _VERP_LOCAL.match(local)
        if match is None:
            token = local.removeprefix(BOUNCE_PREFIX)[:ALIAS_TOKEN_LENGTH]
            return BounceAddress(token, BounceCheck.FORGED)
        token, hour = match["token"], int(match["hour"])
        if not hmac.compare_digest(match["mac"], self._mac(token, hour)):
            return BounceAddress(token, BounceCheck.FORGED)
        if now.timestamp() > hour * _SECONDS_PER_HOUR:
            return BounceAddress(token, BounceCheck.EXPIRED)
        return BounceAddress(token, BounceCheck.VALID)

    def _mac(self, token: str, hour: int) -> str:
        digest = hmac.new(self.key, f"{token}.{hour}".encode(), hashlib.sha256).digest()
        return base64.b32encode(digest).decode()[:10].lower()


def new_verp_key() -> str:
    return secrets.token_hex(32)


def alias_address(token: str, alias_domain: str) -> str:
    return f"{token}@{alias_domain}"


def bounce_address(token: str, alias_domain: str) -> str:
    """The envelope sender a delivery is queued with: names the outbound row, not a person;
    each attempt sends it signed (BounceSigner.address)."""
    return f"{BOUNCE_PREFIX}{token}@{alias_domain}"


def new_message_id(alias_domain: str) -> str:
    return f"<{secrets.token_hex(16)}@{alias_domain}>"
