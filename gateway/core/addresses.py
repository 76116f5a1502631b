"""The one place that parses, normalises and builds addresses and aliases."""

from __future__ import annotations

import base64
import re
import secrets
from dataclasses import dataclass

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


def bounce_token_of(mailbox: Mailbox, alias_domain: str) -> str | None:
    """The delivery token if `mailbox` is one of our bounce addresses, else None."""
    local = mailbox.local.lower()
    if mailbox.domain != alias_domain or not local.startswith(BOUNCE_PREFIX):
        return None
    token = local.removeprefix(BOUNCE_PREFIX)
    return token if _ALIAS_TOKEN.match(token) else None


def alias_address(token: str, alias_domain: str) -> str:
    return f"{token}@{alias_domain}"


def bounce_address(token: str, alias_domain: str) -> str:
    """Envelope sender of delivered mail: VERP-style, names the outbound row, not a person."""
    return f"{BOUNCE_PREFIX}{token}@{alias_domain}"


def new_message_id(alias_domain: str) -> str:
    return f"<{secrets.token_hex(16)}@{alias_domain}>"
