"""The checkpointer: appends what intake committed since its last run to the archive log
and signs a checkpoint of the log's new head. Any number may run (one per gateway, several
gateways on one PostgreSQL): the head row they lock makes them take turns."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from gateway.audit.signing import sign
from gateway.core.clock import Clock
from gateway.core.records import LogKey, SignedCheckpoint, checkpoint_text
from gateway.obs.log import get_logger
from gateway.storage import archive_log
from gateway.storage.database import Database

_log = get_logger("archive_log")


@dataclass(frozen=True, slots=True)
class CheckpointRun:
    appended: int
    checkpoint: SignedCheckpoint | None  # None: the log did not grow


class Checkpointer:
    def __init__(
        self,
        database: Database,
        key: LogKey,
        clock: Clock,
        *,
        interval: float = 10.0,
        batch: int = archive_log.APPEND_BATCH,
    ) -> None:
        self._db = database
        self._key = key
        self._clock = clock
        self._interval = interval
        self._batch = batch

    def run_once(self) -> CheckpointRun:
        """Appends every committed record not yet in the log, a batch per transaction, and
        signs the head in the last one."""
        appended = 0
        while True:
            with self._db.writing() as connection:
                frontier, count = archive_log.append_committed(
                    connection, self._clock.now(), self._batch
                )
                appended += count
                if count == self._batch:
                    continue  # more are waiting: commit this batch, let intake in
                latest = archive_log.latest_checkpoint(connection)
                if frontier.size == 0 or (latest and latest.tree_size == frontier.size):
                    return CheckpointRun(appended, None)
                checkpoint = self._sign(frontier.size, frontier.root())
                archive_log.add_checkpoint(connection, checkpoint)
                return CheckpointRun(appended, checkpoint)

    def _sign(self, tree_size: int, root: bytes) -> SignedCheckpoint:
        signed_at = self._clock.now()
        signature = sign(self._key, checkpoint_text(tree_size, root, signed_at))
        return SignedCheckpoint(tree_size, root, signed_at, self._key.key_id, signature)

    async def run(self) -> None:
        """Every `interval` seconds, until cancelled; a failed run is logged and retried."""
        while True:
            await asyncio.sleep(self._interval)
            try:
                result = await asyncio.to_thread(self.run_once)
            except Exception as error:  # the database is down: the records wait, none is lost
                _log.error("archive_checkpoint_failed", exc_info=error)
                continue
            if result.checkpoint is not None:
                _log.info(
                    "archive_checkpoint",
                    appended=result.appended,
                    tree_size=result.checkpoint.tree_size,
                    root=result.checkpoint.root_hash.hex(),
                )
