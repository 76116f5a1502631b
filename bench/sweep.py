"""The concurrency sweep of `python -m bench.scaling`: the same number of messages sent to one
running gateway over 1, 2, 5... concurrent sessions in turn, the queue drained in between.

Each session is an aiosmtplib connection kept open, sending one message after another
(bench/load.py's clients and `[bench:N]`-tagged order notices; the tags go on across levels,
so that every message of the run is told apart at the sink).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from bench.e2e import Harness
from bench.load import Arrivals, build_jobs, figures, run_clients
from bench.proctree import machine_busy_seconds, spent, tree_cpu_seconds
from bench.report import RunReport, rounded
from bench.scaling_server import ServedGateway
from bench.sink import clock

QUEUE_POLL = 0.2  # seconds between looks at the gateway's queue while it drains
# Figures of RunReport.summary() that a level does not have: they are the run's.
_NOT_PER_LEVEL = ("peak_rss_mib", "exit_code")


@dataclass(frozen=True, slots=True)
class CpuTimes:
    """CPU seconds of the gateway's process tree, of this benchmark's (the gateway, the load
    and the sink: every process it started, and itself) and of the whole machine."""

    gateway: float | None
    benchmark: float | None
    machine: float | None

    @classmethod
    def now(cls, gateway_pid: int) -> CpuTimes:
        return cls(
            tree_cpu_seconds(gateway_pid), tree_cpu_seconds(os.getpid()), machine_busy_seconds()
        )

    def since(self, earlier: CpuTimes) -> CpuTimes:
        return CpuTimes(
            spent(earlier.gateway, self.gateway),
            spent(earlier.benchmark, self.benchmark),
            spent(earlier.machine, self.machine),
        )

    @property
    def load(self) -> float | None:
        """The benchmark's CPU without the gateway's: the clients' and the sink's."""
        return spent(self.gateway, self.benchmark)


@dataclass
class Level:
    """One level of the sweep: the load's figures and the CPU spent over the level, from
    the first message sent to the queue drained."""

    sessions: int
    report: RunReport  # its cpu_seconds: the gateway's
    seconds: float  # between the two CPU readings
    cpu: CpuTimes  # spent over those seconds

    @property
    def cores_busy(self) -> float | None:
        """The gateway's CPU seconds per second: how many cores it kept busy."""
        return self._per_second(self.cpu.gateway)

    @property
    def load_cores_busy(self) -> float | None:
        """The same for the clients and the sink."""
        return self._per_second(self.cpu.load)

    @property
    def machine_cores_busy(self) -> float | None:
        """The same for the whole machine: the gateway, the load, the sink and other work."""
        return self._per_second(self.cpu.machine)

    def _per_second(self, cpu: float | None) -> float | None:
        return None if cpu is None or self.seconds <= 0 else cpu / self.seconds

    def problems(self) -> list[str]:
        """Refused, lost, duplicated or unexpected messages."""
        found = self.report.figures
        counts = {
            "refused or failed": sum(found.errors.values()),
            "lost": found.lost,
            "duplicated": found.duplicates,
            "arrived without a 250": found.unexpected,
        }
        return [f"{count} {what}" for what, count in counts.items() if count]

    def summary(self) -> dict[str, Any]:
        figures = self.report.summary()
        for key in _NOT_PER_LEVEL:
            figures.pop(key)
        return {
            "sessions": self.sessions,
            **figures,
            "cpu_seconds": rounded(self.report.cpu_seconds, 3),
            "measured_seconds": rounded(self.seconds, 3),
            "cores_busy": rounded(self.cores_busy, 2),
            "load_cores_busy": rounded(self.load_cores_busy, 2),
            "machine_cores_busy": rounded(self.machine_cores_busy, 2),
            "problems": self.problems(),
        }


async def drain(gateway: ServedGateway, arrivals: Arrivals, accepted: set[int]) -> None:
    """Until every accepted message has arrived at the sink and the queue is empty; the
    caller bounds the wait (a message that never arrives is lost, not waited for)."""
    await arrivals.wait_for(accepted)
    while True:  # a count in the database: there is no event to wait on
        if not await gateway.queued():
            return
        await asyncio.sleep(QUEUE_POLL)


async def measure_level(
    gateway: ServedGateway, sessions: int, messages: int, first: int, drain_timeout: float
) -> Level:
    """`messages` messages, tagged from `first` on, over `sessions` concurrent sessions."""
    jobs = build_jobs(messages, gateway.routes, first)
    arrivals = Arrivals.from_now(gateway.arrivals_path)
    cpu_before, began = CpuTimes.now(gateway.pid), clock()
    samples = await run_clients(gateway.port, jobs, sessions)
    accepted = {sample.token for sample in samples if sample.error is None}
    with suppress(TimeoutError):
        async with asyncio.timeout(drain_timeout):
            await drain(gateway, arrivals, accepted)
    cpu, ended = CpuTimes.now(gateway.pid).since(cpu_before), clock()
    arrivals.poll()  # late duplicates, until now
    report = RunReport(f"{sessions} sessions", figures(samples, arrivals), None, cpu.gateway)
    return Level(sessions, report, ended - began, cpu)


async def sweep(
    harness: Harness,
    gateway: ServedGateway,
    levels: Sequence[int],
    messages: int,
    drain_timeout: float,
    done: list[Level],
) -> None:
    """Every level in turn; each is appended to `done` as it ends (an aborted run keeps
    what it measured)."""
    for number, sessions in enumerate(levels):
        harness.step(f"{messages} messages over {sessions} concurrent sessions")
        level = await measure_level(gateway, sessions, messages, number * messages, drain_timeout)
        done.append(level)
        harness.step(level_line(level))


def level_line(level: Level) -> str:
    """A progress line: the level's rates, CPU per message and anything wrong."""
    found = level.report.figures
    accepted, delivered = found.accept_rate, found.end_to_end_rate
    cpu = level.report.cpu_ms_per_message
    text = (
        f"  {found.accepted} accepted ({_rate(accepted)}), {found.delivered} delivered "
        f"({_rate(delivered)}), " + ("CPU n/a" if cpu is None else f"{cpu:.1f} ms CPU per message")
    )
    problems = level.problems()
    return text + (f" [red]{'; '.join(problems)}[/red]" if problems else "")


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} msg/s"
