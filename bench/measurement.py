"""One measurement of `python -m bench.postfix`: a target started afresh, smtp-source's load
sent through it, its figures taken, everything stopped again."""

from __future__ import annotations

import asyncio
import os
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.e2e import SELLER_MAILBOX, Harness
from bench.load import Route
from bench.message_file import write_message_file
from bench.proctree import MemoryWatch, spent, tree_cpu_seconds, tree_pss_mib
from bench.report import rounded
from bench.sink import clock
from bench.smtptools import run_source, source_argv
from bench.targets import GatewaySetup, start_target

# smtp-source's two ways of using its sessions.
MODES = {
    "reuse": "many messages per session (-d)",
    "fresh": "one message per session",
}


@dataclass(frozen=True, slots=True)
class Load:
    messages: int
    sessions: int
    size: int | None  # None: the order notice as bench/load.py sends it
    drain_timeout: float


@dataclass
class Measurement:
    """The figures of one target in one mode in one repetition."""

    repetition: int
    mode: str
    target: str
    messages: int  # asked of smtp-source
    message_bytes: int
    completed: int  # DATA commands smtp-source saw complete
    delivered: int  # counted at the final sink
    seconds: float | None  # smtp-source started -> last arrival at the final sink
    cpu_seconds: float | None  # of the server's whole process tree in that time
    peak_rss_mib: float | None  # largest sum of VmHWM over the server's live processes
    processes_at_peak: int
    pss_mib: float | None  # PSS summed over the server's processes at the end of the load
    # All of PostgreSQL's CPU in that time (other users' too): gateway-postgresql only.
    database_cpu_seconds: float | None
    source_exit: int | None
    source_errors: list[str] = field(default_factory=list)
    exit_code: int | None = None  # the server's after SIGTERM (None: none, or killed)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float | None:
        return self.delivered / self.seconds if self.seconds else None

    @property
    def cpu_ms_per_message(self) -> float | None:
        return self.ms_per_message(self.cpu_seconds)

    def ms_per_message(self, seconds: float | None) -> float | None:
        """CPU `seconds` in ms per delivered message."""
        return None if seconds is None or not self.delivered else seconds * 1000 / self.delivered

    def problems(self) -> list[str]:
        """What went wrong: lost or extra messages, refusals, an unclean exit."""
        found = []
        if self.delivered < self.messages:
            found.append(f"{self.messages - self.delivered} not delivered")
        if self.delivered > self.messages:
            found.append(f"{self.delivered - self.messages} more arrivals than messages")
        if self.source_exit != 0:
            found.append(f"smtp-source exited with {self.source_exit}")
        found.extend(self.source_errors[:3])
        if self.target.startswith("gateway") and self.exit_code != 0:
            found.append(f"gateway exit status {self.exit_code} after SIGTERM")
        return found

    def summary(self) -> dict[str, Any]:
        return {
            "repetition": self.repetition,
            "mode": self.mode,
            "target": self.target,
            "messages": self.messages,
            "message_bytes": self.message_bytes,
            "completed": self.completed,
            "delivered": self.delivered,
            "seconds": rounded(self.seconds, 3),
            "msg_per_s": rounded(self.rate, 2),
            "cpu_seconds": rounded(self.cpu_seconds, 3),
            "cpu_ms_per_message": rounded(self.cpu_ms_per_message, 3),
            "peak_rss_mib": rounded(self.peak_rss_mib, 1),
            "processes_at_peak": self.processes_at_peak,
            "pss_mib_at_end": rounded(self.pss_mib, 1),
            "database_cpu_ms_per_message": rounded(
                self.ms_per_message(self.database_cpu_seconds), 3
            ),
            "source_exit": self.source_exit,
            "source_errors": self.source_errors[:20],
            "exit_code": self.exit_code,
            "problems": self.problems(),
            **self.details,
        }


async def measure(
    target: str,
    mode: str,
    repetition: int,
    load: Load,
    setup: GatewaySetup,
    harness: Harness,
) -> Measurement:
    """Start `target` on `harness` (its stack stops it), send the load, take the figures."""
    server = await start_target(target, harness, setup)
    route = Route(SELLER_MAILBOX, server.recipient)
    message_file = harness.workdir / "message.eml"
    size = write_message_file(message_file, route, load.size)
    argv = source_argv(
        server.port,
        message_file,
        messages=load.messages,
        sessions=load.sessions,
        reuse=mode == "reuse",
        sender=route.mail_from,
        recipient=route.rcpt,
    )
    harness.step(f"{target}: {load.messages} messages, {MODES[mode]}")
    memory = MemoryWatch(server.root_pid)
    memory.start()
    cpu_before = tree_cpu_seconds(server.root_pid)
    database_before = _cpu_of(server.database_pid)
    began = clock()
    source = await run_source("smtp-source", argv, harness.workdir / "smtp-source.log")
    # After a refusal smtp-source stops: only what it completed can arrive.
    expected = load.messages if source.exit_code == 0 else source.completed
    with suppress(TimeoutError):
        async with asyncio.timeout(load.drain_timeout):
            await server.arrivals.wait_for(expected)
    cpu_after = tree_cpu_seconds(server.root_pid)
    database_after = _cpu_of(server.database_pid)
    peak_rss = await memory.stop()
    pss = tree_pss_mib(server.root_pid)
    last = server.arrivals.last_arrival
    exit_code = await server.stop()
    return Measurement(
        repetition=repetition,
        mode=mode,
        target=target,
        messages=load.messages,
        message_bytes=size,
        completed=source.completed,
        delivered=server.arrivals.count,
        seconds=None if last is None else last - began,
        cpu_seconds=spent(cpu_before, cpu_after),
        peak_rss_mib=peak_rss,
        processes_at_peak=memory.processes_at_peak,
        pss_mib=pss,
        database_cpu_seconds=spent(database_before, database_after),
        source_exit=source.exit_code,
        source_errors=source.errors,
        exit_code=exit_code,
        details=server.details(),
    )


def _cpu_of(root: int | None) -> float | None:
    return None if root is None else tree_cpu_seconds(root)


async def measure_afresh(
    target: str,
    mode: str,
    repetition: int,
    load: Load,
    setup: GatewaySetup,
    folder: Path,
    began: float,
) -> Measurement:
    """One measurement in a folder of its own; its processes are stopped on every way out,
    and their logs shown if it fails."""
    os.makedirs(folder)
    async with AsyncExitStack() as stack:
        harness = Harness(stack, folder, began=began)
        try:
            return await measure(target, mode, repetition, load, setup, harness)
        except BaseException:
            harness.show_logs()
            raise
