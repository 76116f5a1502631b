"""Submission credentials of sellers: created with a one-time app password (stored only as
an argon2id hash), revoked, found."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update

from gateway.core.clock import Clock
from gateway.core.model import SellerLogin, StoredCredential
from gateway.storage.database import Database
from gateway.storage.schema import Seller, SellerCredential, SellerMailbox, is_row_id


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


class CredentialError(ValueError):
    """A credential request that cannot be carried out; the text says why."""


@dataclass(frozen=True, slots=True)
class NewCredential:
    seller_id: int
    username: str
    password: str  # shown once; only its hash is kept


class CredentialStore:
    """The Logins port of the submission listeners, and the CLI's credential commands."""

    def __init__(self, database: Database, clock: Clock) -> None:
        self._db = database
        self._clock = clock

    def add(self, seller_id: int) -> NewCredential:
        password = new_app_password()
        # Hashing takes a noticeable moment: outside the write transaction.
        password_hash = hash_password(password)
        username = new_username(seller_id)
        with self._db.transaction() as session:
            if not is_row_id(seller_id) or session.get(Seller, seller_id) is None:
                raise CredentialError(f"no seller with id {seller_id}")
            session.add(
                SellerCredential(
                    seller_id=seller_id,
                    username=username,
                    password_hash=password_hash,
                    created_at=self._clock.now(),
                )
            )
        return NewCredential(seller_id, username, password)

    def revoke(self, seller_id: int, username: str | None = None) -> list[str]:
        """Revoke one credential of the seller, or all of them; the names revoked."""
        if not is_row_id(seller_id):
            raise CredentialError(f"no seller with id {seller_id}")
        with self._db.transaction() as session:
            query = select(SellerCredential.username).where(
                SellerCredential.seller_id == seller_id, SellerCredential.revoked_at.is_(None)
            )
            if username is not None:
                query = query.where(SellerCredential.username == username)
            names = list(session.scalars(query))
            if not names:
                what = f"credential {username!r}" if username else "credential"
                raise CredentialError(f"seller {seller_id} has no active {what}")
            session.execute(
                update(SellerCredential)
                .where(SellerCredential.username.in_(names))
                .values(revoked_at=self._clock.now())
            )
        return names

    def find(self, username: str) -> StoredCredential | None:
        with self._db.reading() as session:
            rows = session.execute(
                select(
                    SellerCredential.seller_id,
                    SellerCredential.password_hash,
                    SellerMailbox.address,
                )
                .join(SellerMailbox, SellerMailbox.seller_id == SellerCredential.seller_id)
                .where(SellerCredential.username == username, SellerCredential.revoked_at.is_(None))
                .order_by(SellerMailbox.id)
            ).all()
        if not rows:
            return None
        login = SellerLogin(rows[0].seller_id, username, tuple(row.address for row in rows))
        return StoredCredential(login, rows[0].password_hash)
