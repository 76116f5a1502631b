"""Clients' failures (the client_failures family): failed logins (SMTP AUTH on the
submission ports, the auditor console's form) and recipients refused as unknown (alias
guessing). Counted in the database, so that every process and every replica of a deployment
sees the same failures, slows a client down and locks it out together; keys are kept as
hashes (a client address, a user name are nobody's business at rest)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, insert, select

from gateway.core.clock import Clock
from gateway.core.throttle import ThrottleRules, backoff, locked_until, recent
from gateway.storage.database import Database
from gateway.storage.schema import ClientFailure, table_of

_FAILURES = table_of(ClientFailure)
_FORGET_EVERY = timedelta(minutes=5)


class FailureThrottle:
    """Failures per key within a sliding window, in one scope (`smtp`, `console`, `rcpt`);
    a key at the limit is locked for a while."""

    def __init__(self, database: Database, clock: Clock, scope: str, rules: ThrottleRules):
        self._database = database
        self._clock = clock
        self._scope = scope
        self._rules = rules
        self._forgot_at: datetime | None = None

    def locked(self, keys: Sequence[str]) -> bool:
        now = self._clock.now()
        with self._database.read_connection() as connection:
            times = self._times(connection, keys, now)
        return any(_locked(t, self._rules, now) for t in times.values())

    def failed(self, keys: Sequence[str]) -> tuple[float, list[str]]:
        """Record one failure for each key: the delay before answering it, and the keys that
        this failure locked."""
        now = self._clock.now()
        hashes = [_hash(key) for key in keys]
        with self._database.writing() as connection:
            before = self._times(connection, keys, now)
            connection.execute(
                insert(_FAILURES), [{"scope": self._scope, "key": h, "at": now} for h in hashes]
            )
            if self._forgot_at is None or now - self._forgot_at > _FORGET_EVERY:
                # Each scope forgets only its own: another may remember for longer.
                connection.execute(
                    delete(_FAILURES).where(
                        _FAILURES.c.scope == self._scope,
                        _FAILURES.c.at < now - self._rules.memory,
                    )
                )
                self._forgot_at = now
        after = {key: [*times, now] for key, times in before.items()}  # now is the latest
        newly = [
            key
            for key in keys
            if _locked(after[key], self._rules, now) and not _locked(before[key], self._rules, now)
        ]
        delay = max(
            backoff(recent(after[key], self._rules, now), self._rules.free, self._rules.base)
            for key in keys
        )
        return delay, newly

    def _times(
        self, connection: Connection, keys: Sequence[str], now: datetime
    ) -> dict[str, list[datetime]]:
        by_hash = {_hash(key): key for key in keys}
        rows = connection.execute(
            select(_FAILURES.c.key, _FAILURES.c.at)
            .where(
                _FAILURES.c.scope == self._scope,
                _FAILURES.c.key.in_(list(by_hash)),
                _FAILURES.c.at > now - self._rules.memory,
            )
            .order_by(_FAILURES.c.at)
        )
        times: dict[str, list[datetime]] = {key: [] for key in keys}
        for row in rows:
            times[by_hash[row.key]].append(row.at)
        return times


def _locked(times: list[datetime], rules: ThrottleRules, now: datetime) -> bool:
    until = locked_until(times, rules)
    return until is not None and until > now


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()
