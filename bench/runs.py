"""How a benchmark run that starts servers is bounded and ends: a time limit, SIGTERM and
Ctrl-C unwinding it (every process it started is stopped on the way out), and its exit
status."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable, Coroutine
from typing import Any, NoReturn

import psycopg

from bench.procs import BenchError

INTERRUPTED = "interrupted"  # why a run was aborted by Ctrl-C or SIGTERM
# What ends a run early without a traceback: the reason is printed instead.
ABORTING = (BenchError, TimeoutError, OSError, psycopg.Error)


def cancel_on_sigterm() -> None:
    """SIGTERM unwinds the running task as Ctrl-C does."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)


async def bounded(work: Awaitable[None], seconds: float) -> str | None:
    """Await `work` for at most `seconds`; why it was aborted, None if it ended."""
    try:
        async with asyncio.timeout(seconds):
            await work
    except ABORTING as error:
        return str(error) or f"took longer than --timeout {seconds:.0f} s"
    except asyncio.CancelledError:  # Ctrl-C or SIGTERM, after the processes were stopped
        return INTERRUPTED
    return None


def exit_status(aborted: str | None, misbehaved: bool) -> int:
    """130 if interrupted, 2 if aborted otherwise, 1 if something was wrong, else 0."""
    if aborted:
        return 130 if aborted == INTERRUPTED else 2
    return 1 if misbehaved else 0


def exit_with(run: Coroutine[Any, Any, int]) -> NoReturn:
    """Run `run` and exit with its status; 130 on a Ctrl-C that outlived it."""
    try:
        sys.exit(asyncio.run(run))
    except KeyboardInterrupt:  # the processes were stopped on the way out
        sys.exit(130)
