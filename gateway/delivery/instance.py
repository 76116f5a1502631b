"""This process as the queue knows it (an id, its host, its pid and start) and whether a
process of the same host still runs: read from /proc, where Linux keeps it."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

from gateway.storage.instances import ProcessIdentity


def _started(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat: the start time in clock ticks since boot."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its end.
    return stat.rpartition(")")[2].split()[19]


def _host() -> str:
    """The host name, the kernel's boot and the pid namespace: pids compare only within."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return socket.gethostname()[:200]
    return f"{socket.gethostname()[:200]}/{boot}/{namespace}"


def this_process() -> ProcessIdentity:
    pid = os.getpid()
    return ProcessIdentity(uuid.uuid4().hex, _host(), pid, _started(pid) or "")


def is_alive(pid: int, started: str) -> bool:
    """Whether `pid` on this host still runs the process that started at `started`."""
    return bool(started) and _started(pid) == started
