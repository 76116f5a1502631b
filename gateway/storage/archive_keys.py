"""The Ed25519 keys that sign the archive log's checkpoints, in the database so that every
instance signs with the same one. The key is made on the first start, like the DKIM key."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select, update

from gateway.core.clock import Clock
from gateway.core.records import LogKey
from gateway.storage.database import Database
from gateway.storage.schema import ArchiveKey


class ArchiveKeyStore:
    def __init__(self, database: Database, clock: Clock) -> None:
        self._db = database
        self._clock = clock

    def active(self) -> LogKey | None:
        with self._db.reading() as session:
            # Two instances starting at once may each make one: the newest signs.
            newest = select(ArchiveKey).where(ArchiveKey.active).order_by(ArchiveKey.id.desc())
            key = session.scalars(newest).first()
            return LogKey(key.key_id, key.private_key, key.public_key) if key else None

    def public_keys(self) -> dict[str, str]:
        """Every key's base64 public key by its id, the retired ones too."""
        with self._db.reading() as session:
            rows = session.execute(select(ArchiveKey.key_id, ArchiveKey.public_key)).all()
            return {key_id: public for key_id, public in rows}

    def ensure_active(self, new_key: Callable[[], LogKey]) -> LogKey:
        """The active key; on a database without one, a key made now."""
        active = self.active()
        if active is not None:
            return active
        key = new_key()
        with self._db.transaction() as session:
            session.execute(update(ArchiveKey).values(active=False))
            session.add(
                ArchiveKey(
                    key_id=key.key_id,
                    private_key=key.private_key_pem,
                    public_key=key.public_key,
                    active=True,
                    created_at=self._clock.now(),
                )
            )
        return key
