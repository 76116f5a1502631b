"""CPU time and memory of a server made of several processes: a parent and all its
descendants, read from /proc (Linux).

CPU: the sum, over the live processes of the tree, of utime + stime + cutime + cstime.
cutime/cstime hold the CPU of children a process has reaped, so a Postfix smtpd that exits
after serving its clients still counts (its master reaps it); a difference of two readings
is the CPU the whole server spent between them, children born and gone in between included.

Memory: VmHWM (peak resident set) summed over the live processes, sampled while the load
runs; the largest sum is kept. A process that exits between two samples takes its figure
with it, and pages shared between processes (libraries, copy-on-write after fork) count
once per process, so the sum is an upper bound of the memory the server held at once. PSS
(proportional set size: a shared page split among its sharers) summed over the tree does
not overcount; it has no high-water mark and costs more to read, so it is read once, at
the end of the load, when Postfix's daemons and the gateway are still all there. VmRSS
summed over the tree is the resident set now, for readings before and after a change.

The whole machine's busy CPU time (/proc/stat) is read the same way, to tell whether the
cores were full while a server was measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

SAMPLE_INTERVAL = 0.25  # seconds between memory samples
_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    """Fields 3 onwards of /proc/PID/stat (after the command name, which may hold spaces)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    return text.rpartition(")")[2].split()


def tree_pids(root: int) -> list[int]:
    """`root` and every live descendant of it (empty when `root` is gone)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    if _stat_fields(root) is None:
        return []
    found, pending = [], [root]
    while pending:
        pid = pending.pop()
        found.append(pid)
        pending.extend(children.get(pid, ()))
    return found


def tree_cpu_seconds(root: int) -> float | None:
    """User + system CPU of the tree, reaped children included; None if `root` is gone."""
    ticks, seen = 0, False
    for pid in tree_pids(root):
        fields = _stat_fields(pid)
        if fields is not None:
            seen = True
            # proc(5) fields 14-17: utime, stime, cutime, cstime.
            ticks += sum(int(value) for value in fields[11:15])
    return ticks / _TICKS if seen else None


def spent(before: float | None, after: float | None) -> float | None:
    """The CPU seconds between two readings; None if either is unknown."""
    return None if before is None or after is None else after - before


def machine_busy_seconds() -> float | None:
    """CPU seconds every CPU of the machine has spent not idle since boot, all processes
    (user, nice, system, irq, softirq, steal; not idle or iowait); None where unknown."""
    try:
        first = Path("/proc/stat").read_text(encoding="ascii").splitlines()[0]
    except (OSError, IndexError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, first.split()[1:9])
    return (user + nice + system + irq + softirq + steal) / _TICKS


def _kib(path: str, key: str) -> int | None:
    """The `key:` line of a /proc file in kB (status, smaps_rollup); None if absent."""
    try:
        lines = Path(path).read_text(encoding="ascii").splitlines()
    except OSError:
        return None
    return next((int(line.split()[1]) for line in lines if line.startswith(key)), None)


def tree_peak_rss_kib(root: int) -> tuple[int, int]:
    """VmHWM summed over the live processes of the tree, in KiB, and how many there were."""
    found = [_kib(f"/proc/{pid}/status", "VmHWM:") for pid in tree_pids(root)]
    present = [kib for kib in found if kib is not None]
    return sum(present), len(present)


def tree_peak_rss_mib(root: int) -> float | None:
    """VmHWM summed over the live processes of the tree, in MiB; None if none is readable.
    Read it before the processes exit: a finished process has no memory figures."""
    total, count = tree_peak_rss_kib(root)
    return total / 1024 if count else None


def tree_pss_mib(root: int) -> float | None:
    """PSS summed over the live processes of the tree, in MiB; None if none is readable."""
    return _tree_sum_mib(root, "smaps_rollup", "Pss:")


def tree_rss_mib(root: int) -> float | None:
    """The resident set (VmRSS, now) summed over the live processes of the tree, in MiB;
    None if none is readable. Shared pages count once per process."""
    return _tree_sum_mib(root, "status", "VmRSS:")


def _tree_sum_mib(root: int, file: str, key: str) -> float | None:
    found = [_kib(f"/proc/{pid}/{file}", key) for pid in tree_pids(root)]
    present = [kib for kib in found if kib is not None]
    return sum(present) / 1024 if present else None


@dataclass
class MemoryWatch:
    """Samples a tree's summed VmHWM in the background; keeps the largest sum."""

    root: int
    peak_kib: int = 0
    processes_at_peak: int = 0
    _task: asyncio.Task[None] | None = field(default=None, repr=False)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> float | None:
        """Stop sampling after one last sample; the peak in MiB (None if never seen)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._sample()
        return self.peak_kib / 1024 if self.peak_kib else None

    async def _run(self) -> None:
        while True:
            # Reading /proc is quick but not free: off the event loop, which times arrivals.
            await asyncio.to_thread(self._sample)
            await asyncio.sleep(SAMPLE_INTERVAL)

    def _sample(self) -> None:
        total, count = tree_peak_rss_kib(self.root)
        if total > self.peak_kib:
            self.peak_kib, self.processes_at_peak = total, count
