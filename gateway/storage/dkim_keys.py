"""The alias domain's DKIM keys in the database, so that every instance signs alike."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from gateway.core.clock import Clock
from gateway.core.model import SigningKey
from gateway.obs.log import get_logger
from gateway.storage.database import Database
from gateway.storage.schema import DkimKey

_log = get_logger("dkim")


class DkimKeyError(ValueError):
    """A key request that cannot be carried out; the text says why."""


class DkimKeyStore:
    def __init__(self, database: Database, clock: Clock) -> None:
        self._db = database
        self._clock = clock

    def active(self) -> SigningKey | None:
        with self._db.reading() as session:
            key = session.scalars(select(DkimKey).where(DkimKey.active)).first()
            return SigningKey(key.selector, key.private_key) if key else None

    def add(self, selector: str, private_key_pem: str) -> SigningKey:
        """Store a new key and make it the active one; the previous key stays on record."""
        try:
            with self._db.transaction() as session:
                session.execute(update(DkimKey).values(active=False))
                session.add(
                    DkimKey(
                        selector=selector,
                        private_key=private_key_pem,
                        active=True,
                        created_at=self._clock.now(),
                    )
                )
        except IntegrityError:
            raise DkimKeyError(f"selector {selector!r} is already in use") from None
        return SigningKey(selector, private_key_pem)

    def ensure_active(self, selector: str, new_key: Callable[[], str]) -> SigningKey:
        """The active key; on a database without one, a key made now under `selector`."""
        active = self.active()
        if active is not None:
            return active
        try:
            created = self.add(selector, new_key())
        except DkimKeyError:  # another instance made it at the same moment
            active = self.active()
            assert active is not None
            return active
        _log.info("dkim_key_created", selector=selector)
        return created

    def selectors(self) -> list[str]:
        """Every selector ever used, oldest first: each one's DNS record stays published."""
        with self._db.reading() as session:
            return list(session.scalars(select(DkimKey.selector).order_by(DkimKey.id)))
