"""Idle sessions for `python -m bench.scaling`: many connections that each get their greeting,
send EHLO and then sit idle, and the gateway's memory before and while they are open.

Memory is summed over the gateway's process tree (its parent and workers): VmRSS, where a
page shared between processes counts once per process, and PSS, where it is split among
them. Both are read before the sessions are opened and again after they have been held.
After the hold every session is asked a NOOP: one that answers was still open.
"""

from __future__ import annotations

import asyncio
import resource
from collections import Counter
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, TypeVar

import aiosmtplib

from bench.load import SEND_TIMEOUT, describe
from bench.procs import LOOPBACK, BenchError
from bench.proctree import tree_pids, tree_pss_mib, tree_rss_mib
from bench.report import rounded
from bench.sink import clock
from bench.smtptools import CLIENT_HOSTNAME

OPENING_AT_ONCE = 100  # connections being opened at the same time (the rest wait their turn)
SPARE_FILES = 256  # descriptors beyond one per session: the sink's, logs, /proc reads
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Memory:
    """The gateway's memory at one moment, summed over its processes."""

    rss_mib: float | None
    pss_mib: float | None
    processes: int

    @classmethod
    def of(cls, root: int) -> Memory:
        return cls(tree_rss_mib(root), tree_pss_mib(root), len(tree_pids(root)))


@dataclass(frozen=True, slots=True)
class IdleSessions:
    """What holding `asked` idle sessions showed."""

    asked: int
    greeted: int  # 220 greeting and 250 to EHLO
    answered_after_hold: int  # 250 to a NOOP after the hold
    failures: dict[str, int]  # why sessions were not greeted or did not answer, and how often
    held_seconds: float
    before: Memory
    held: Memory  # at the end of the hold, every greeted session open

    def per_session_kib(self, figure: str) -> float | None:
        """Growth of `figure` ("rss_mib" or "pss_mib") per greeted session, in KiB."""
        before, held = getattr(self.before, figure), getattr(self.held, figure)
        if before is None or held is None or not self.greeted:
            return None
        return float((held - before) * 1024 / self.greeted)

    def problems(self) -> list[str]:
        """Sessions not greeted, or closed by the gateway while idle."""
        missing = {
            "not greeted": self.asked - self.greeted,
            "closed while idle": self.greeted - self.answered_after_hold,
        }
        return [f"{count} {what}" for what, count in missing.items() if count]

    def summary(self) -> dict[str, Any]:
        return {
            "asked": self.asked,
            "greeted": self.greeted,
            "answered_after_hold": self.answered_after_hold,
            "failures": self.failures,
            "held_seconds": rounded(self.held_seconds, 1),
            "processes": self.held.processes,
            "rss_mib_before": rounded(self.before.rss_mib, 1),
            "rss_mib_held": rounded(self.held.rss_mib, 1),
            "pss_mib_before": rounded(self.before.pss_mib, 1),
            "pss_mib_held": rounded(self.held.pss_mib, 1),
            "rss_kib_per_session": rounded(self.per_session_kib("rss_mib"), 1),
            "pss_kib_per_session": rounded(self.per_session_kib("pss_mib"), 1),
            "problems": self.problems(),
        }


def allow_open_files(needed: int) -> None:
    """Raise this process's soft limit of open files to `needed` plus spares (children
    started later inherit it); fail if the hard limit is lower."""
    wanted = needed + SPARE_FILES
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            raise BenchError(f"{needed} sessions need {wanted} open files; the limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


async def _greeted(port: int, gate: asyncio.Semaphore) -> aiosmtplib.SMTP:
    """A session that got its 220 and a 250 to EHLO; raises on anything else."""
    smtp = aiosmtplib.SMTP(
        hostname=LOOPBACK,
        port=port,
        timeout=SEND_TIMEOUT,
        local_hostname=CLIENT_HOSTNAME,
        start_tls=False,  # no EHLO of its own in connect(): the one below is the only one
    )
    async with gate:
        await smtp.connect()
        try:
            await smtp.ehlo()
        except BaseException:
            smtp.close()
            raise
    return smtp


async def _answers(smtp: aiosmtplib.SMTP) -> None:
    await smtp.noop()


async def _leave(smtp: aiosmtplib.SMTP) -> None:
    with suppress(aiosmtplib.SMTPException, OSError):
        await smtp.quit()
    smtp.close()


def _kept(results: Sequence[T | BaseException], failures: Counter[str], stage: str) -> list[T]:
    """The results that are not errors; the errors counted in `failures` by `stage`."""
    kept = []
    for result in results:
        if isinstance(result, BaseException):
            failures[f"{stage}: {describe(result)}"] += 1
        else:
            kept.append(result)
    return kept


async def hold_idle_sessions(port: int, root: int, count: int, hold: float) -> IdleSessions:
    """Open `count` sessions to 127.0.0.1:`port`, hold them idle for `hold` seconds, read the
    memory of the gateway whose process tree starts at `root`, then end them all."""
    before = Memory.of(root)
    gate = asyncio.Semaphore(OPENING_AT_ONCE)
    failures: Counter[str] = Counter()
    opening = [asyncio.create_task(_greeted(port, gate)) for _ in range(count)]
    try:
        opened = await asyncio.gather(*opening, return_exceptions=True)
        sessions = _kept(opened, failures, "greeting or EHLO")
        began = clock()
        await asyncio.sleep(hold)
        held, held_seconds = Memory.of(root), clock() - began
        answers = await asyncio.gather(*map(_answers, sessions), return_exceptions=True)
        answered = len(_kept(answers, failures, "NOOP after the hold"))
        await asyncio.gather(*map(_leave, sessions))
    finally:  # on every way out (an aborted run too), no session is left open
        for task in opening:
            task.cancel()
        await asyncio.gather(*opening, return_exceptions=True)
        for task in opening:
            if not task.cancelled() and task.exception() is None:
                task.result().close()
    return IdleSessions(count, len(sessions), answered, dict(failures), held_seconds, before, held)
