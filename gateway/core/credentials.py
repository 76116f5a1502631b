"""App passwords of sellers who submit through the gateway: made here, stored only hashed."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError


def new_username(seller_id: int) -> str:
    """Names the seller (for operators reading logs) and differs per credential."""
    return f"seller{seller_id}-{secrets.token_hex(4)}"


def new_app_password() -> str:
    """144 bits from secrets: no throttling is needed to make guessing hopeless."""
    return secrets.token_urlsafe(18)


def hash_password(password: str) -> str:
    """argon2id with argon2-cffi's defaults (RFC 9106's second recommended option)."""
    return PasswordHasher().hash(password)


def password_matches(password_hash: str, password: str) -> bool:
    try:
        return PasswordHasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# Checked when a user name is unknown, so that the answer takes as long as for a known one
# (the hash of a random password nobody kept).
UNKNOWN_USER_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$S5VMpPA/3tFMEhLCRW6J2g"
    "$0GMKynszZI+l6hjiC2e1Sav3QygVr0GavhekIM+LCbI"
)
