"""The gateway's own secrets (the VERP key), made on first start and shared through the
database by every instance, so that any of them can check what another signed."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from gateway.core.clock import Clock
from gateway.storage.database import Database
from gateway.storage.schema import GatewaySecret


class SecretStore:
    def __init__(self, database: Database, clock: Clock) -> None:
        self._db = database
        self._clock = clock

    def get(self, name: str) -> str | None:
        with self._db.reading() as session:
            return session.scalar(select(GatewaySecret.value).where(GatewaySecret.name == name))

    def ensure(self, name: str, make: Callable[[], str]) -> str:
        """The secret `name`; on a database without it, one made now by `make`."""
        found = self.get(name)
        if found is not None:
            return found
        try:
            with self._db.transaction() as session:
                session.add(GatewaySecret(name=name, value=make(), created_at=self._clock.now()))
        except IntegrityError:
            pass  # another instance made it at the same moment: theirs counts
        found = self.get(name)
        assert found is not None
        return found
