"""Submission credentials of sellers: created with a one-time app password, revoked, found."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update

from gateway.core.clock import Clock
from gateway.core.credentials import hash_password, new_app_password, new_username
from gateway.core.model import SellerLogin, StoredCredential
from gateway.db.models import Seller, SellerCredential, SellerMailbox, is_row_id
from gateway.db.session import Database


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
