"""Group commit: the one writer of a process. Work that is ready at the same moment (the
messages of concurrent sessions, a batch of delivery outcomes, a claim) is written in one
transaction with one fsync; each caller gets its own result only after that commit.

The writer is a thread of its own, so that the event loop never waits on the disk or the
network; one hand-off per batch, not per statement. If a batch fails, each of its jobs is
tried again alone, so that one bad job cannot fail the others, and a database that is down
fails each of them (the intake answers 451 to each).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import InterfaceError, OperationalError

from gateway.obs.log import get_logger
from gateway.storage.database import Database

T = TypeVar("T")
Job = Callable[[Connection], T]

MAX_BATCH = 256  # jobs in one transaction; more wait for the next one
_log = get_logger("storage")


@dataclass(slots=True)
class _Pending:
    job: Job[Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


class _Stop:
    """Tells the writer thread to finish what is queued and end."""


class Committer:
    def __init__(self, database: Database, max_batch: int = MAX_BATCH) -> None:
        self._db = database
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Pending | _Stop] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.batches = 0  # transactions committed, for the metrics and the tests
        self.jobs = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="committer", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        """Commit what is queued, then end the writer."""
        if self._thread is None:
            return
        self._queue.put(_Stop())
        await asyncio.to_thread(self._thread.join)
        self._thread = None

    async def run(self, job: Job[T]) -> T:
        """Run `job` in the next transaction; its result once that transaction committed.
        The job runs whatever happens to the caller: a client that hangs up cannot cut a
        commit short."""
        if self._thread is None:
            raise RuntimeError("the committer is not running")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Pending(job, future, loop))
        return await asyncio.shield(future)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            batch: list[_Pending] = []
            if isinstance(first, _Stop):
                stopping = True
            else:
                batch.append(first)
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if isinstance(item, _Stop):
                    stopping = True
                else:
                    batch.append(item)
            if batch:
                self._commit(batch)

    def _commit(self, batch: list[_Pending]) -> None:
        try:
            with self._db.writing() as connection:
                results = _run_jobs(connection, [pending.job for pending in batch])
        except Exception as error:
            if len(batch) == 1 or isinstance(error, (OperationalError, InterfaceError)):
                # Alone, or the database itself failed: every job of the batch fails.
                for pending in batch:
                    _settle(pending, error=error)
                return
            _log.warning("group_commit_failed", jobs=len(batch), error=type(error).__name__)
            for pending in batch:  # each alone: one bad job must not fail the rest
                self._commit([pending])
            return
        self.batches += 1
        self.jobs += len(batch)
        for pending, result in zip(batch, results, strict=True):
            _settle(pending, result=result)


def _run_jobs(connection: Connection, jobs: list[Job[Any]]) -> list[Any]:
    """The jobs in order; consecutive jobs of a kind that can be written together (their
    `together`: one call for all of them) are."""
    results: list[Any] = []
    start = 0
    while start < len(jobs):
        together = getattr(jobs[start], "together", None)
        end = start + 1
        while together is not None and end < len(jobs):
            if getattr(jobs[end], "together", None) is not together:
                break
            end += 1
        if together is None:
            results.append(jobs[start](connection))
        else:
            results.extend(together(connection, jobs[start:end]))
        start = end
    return results


def _settle(pending: _Pending, result: Any = None, error: BaseException | None = None) -> None:
    def resolve() -> None:
        if pending.future.done():
            return
        if error is not None:
            pending.future.set_exception(error)
        else:
            pending.future.set_result(result)

    # RuntimeError: the caller's loop is gone (shutting down), nobody waits.
    with contextlib.suppress(RuntimeError):
        pending.loop.call_soon_threadsafe(resolve)
