"""The purge of records past their retention, a short batch per transaction with as long a
pause after it, so that intake waits for a moment at most; each batch a record of the log
(gateway.storage.retention)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from gateway.core.clock import Clock
from gateway.obs.log import get_logger
from gateway.storage import retention
from gateway.storage.database import Database

_log = get_logger("retention")
DAY = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class Purged:
    records: int
    bodies: int
    batches: int


class Purger:
    def __init__(
        self,
        database: Database,
        clock: Clock,
        retention_days: int,
        batch: int = retention.PURGE_BATCH,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._db = database
        self._clock = clock
        self._retention = timedelta(days=retention_days)
        self._batch = batch
        self._sleep = sleep

    def due(self) -> int:
        """How many records may go now (what a dry run reports)."""
        with self._db.read_connection() as connection:
            cutoff = self._clock.now() - self._retention
            return len(retention.purgeable(connection, cutoff))

    def run(self, progress: Callable[[int], None] | None = None) -> Purged:
        records = bodies = batches = after = 0
        while True:
            began = time.monotonic()
            with self._db.writing() as connection:
                now = self._clock.now()
                ids = retention.purgeable(connection, now - self._retention, self._batch, after)
                if not ids:
                    return Purged(records, bodies, batches)
                bodies += retention.purge(connection, ids, now)
            # As long again without the write lock: intake (SQLite's one writer, or rows
            # PostgreSQL has locked) waits one short batch at most and gets half the time.
            self._sleep(time.monotonic() - began)
            after = ids[-1]
            records += len(ids)
            batches += 1
            if progress is not None:
                progress(len(ids))

    async def run_daily(self) -> None:
        """`serve`: a purge every day, the first a day after start; until cancelled."""
        while True:
            await asyncio.sleep(DAY)
            try:
                done = await asyncio.to_thread(self.run)
            except Exception as error:  # the next day tries again; nothing is half-done
                _log.error("archive_purge_failed", exc_info=error)
                continue
            _log.info("archive_purged", records=done.records, bodies=done.bodies)
