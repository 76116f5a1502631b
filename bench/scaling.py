"""How bsm-gateway scales with concurrent sessions: `python -m bench.scaling` (what
`make bench-scaling` runs).

One `bsm-gateway serve`, started once as `make bench` starts it (embedded defaults, SQLite or
with --database postgresql a fresh PostgreSQL schema, the shipped content policy, DKIM
signing, delivery over smtp:// to the bare sink bench/sink.py; no SPF/DKIM check on the MX
path unless --sender-auth aligned), is measured twice:

1. Concurrency sweep. For each --levels value in increasing order, --messages ~5 KB order
   notices over that many concurrent sessions, each an aiosmtplib connection kept open and
   sending one message after another (bench/load.py). The queue drains before the next
   level. Per level:
     accepted msg/s        250s / (first MAIL FROM -> last 250)
     delivered msg/s       arrivals at the sink / (first MAIL FROM -> last arrival)
     accept latency        per message, MAIL FROM -> 250 after DATA: p50, p99
     end-to-end latency    per message, MAIL FROM -> arrival at the sink: p50, p99
     CPU ms per message    user + system CPU of the gateway's whole process tree (parent and
                           workers, bench/proctree.py) from the level's start to its queue
                           drained, per message sent
     cores busy            that CPU over that wall time: whether the cores are full
2. Idle sessions. --idle-sessions connections that each get their greeting, send EHLO and sit
   idle for --idle-hold seconds; the gateway's RSS and PSS summed over its process tree before
   they are opened and while they are held, the growth per session, and how many were
   greeted and still answered a NOOP after the hold.

Every connection comes from 127.0.0.1, so the gateway's [smtp] max_sessions_per_client (20
per process by default) is raised past the most sessions the run opens, and max_commands
past the messages one session may send. The gateway runs one worker process per CPU unless
--processes N, which writes [server] processes = N into its config.

p50 and p99 are nearest-rank percentiles. The exit status is 1 if a message was refused,
lost or duplicated, an idle session was not greeted or not kept, or the gateway did not exit
0 on SIGTERM; 2 if the run failed or took longer than --timeout; 130 if it was interrupted.
Every process it started is stopped first, and what was measured until then is still printed
and saved, to bench/results/scaling-<UTC time>.json with facts about the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.e2e import Harness, add_gateway_choices, add_run_limits, queue_states
from bench.idle import IdleSessions, allow_open_files, hold_idle_sessions
from bench.report import machine, print_problems, save_results
from bench.runs import bounded, cancel_on_sigterm, exit_status, exit_with
from bench.scaling_report import idle_notes, idle_table, sweep_notes, sweep_table
from bench.scaling_server import start_gateway
from bench.sink import clock
from bench.sweep import Level, sweep
from bench.targets import GatewaySetup

LEVELS = (1, 2, 5, 10, 20, 50, 100)
SESSION_MARGIN = 10  # past the most sessions the run opens: the readiness probe, a late close
SETTLE_SECONDS = 2.0  # after the sweep, before the idle sessions' "before" memory

console = Console()


@dataclass(frozen=True, slots=True)
class Options:
    levels: list[int]
    messages: int
    idle_sessions: int
    idle_hold: float
    processes: int | None
    database: str
    sender_auth: str
    postgres_dsn: str
    timeout: float
    drain_timeout: float

    @property
    def most_sessions(self) -> int:
        return max(self.idle_sessions, *self.levels)


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scaling",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add(
        "--levels",
        type=int,
        nargs="+",
        default=list(LEVELS),
        metavar="N",
        help=f"concurrent sessions, one level each (default {' '.join(map(str, LEVELS))})",
    )
    add("--messages", type=int, default=1000, help="messages per level (1000)")
    add("--idle-sessions", type=int, default=1000, help="idle sessions held open (1000; 0: none)")
    add("--idle-hold", type=float, default=5.0, help="seconds they are held (5)")
    add(
        "--processes",
        type=int,
        help="written as [server] processes = N in the gateway's config "
        "(default: left out, one worker per CPU)",
    )
    add_gateway_choices(parser, sender_auth="none")
    add_run_limits(parser, timeout=1800, drain_after="each level's last 250")
    args = parser.parse_args(argv)
    if min(*args.levels, args.messages) < 1 or args.idle_sessions < 0 or args.idle_hold < 0:
        parser.error("--levels and --messages must be at least 1, the idle figures at least 0")
    if args.processes is not None and args.processes < 1:
        parser.error("--processes must be at least 1")
    args.levels = sorted(set(args.levels))
    return Options(**vars(args))


@dataclass
class Results:
    """What the run measured so far: an aborted run still prints and saves it."""

    levels: list[Level] = field(default_factory=list)
    idle: IdleSessions | None = None
    exit_code: int | None = None  # the gateway's after SIGTERM; None: killed, or not stopped
    details: dict[str, Any] = field(default_factory=dict)

    def misbehaved(self) -> bool:
        """Refused, lost or duplicated messages, idle sessions refused or dropped, or no
        clean exit."""
        idle_problems = self.idle is not None and bool(self.idle.problems())
        return (
            any(level.problems() for level in self.levels) or idle_problems or self.exit_code != 0
        )


async def run_all(options: Options, harness: Harness, results: Results) -> None:
    allow_open_files(options.most_sessions)
    setup = GatewaySetup(
        most_messages=options.messages,
        processes=options.processes,
        postgres_dsn=options.postgres_dsn,
        most_sessions=options.most_sessions + SESSION_MARGIN,
        sender_auth=options.sender_auth,
    )
    gateway = await start_gateway(harness, options.database, setup)
    await sweep(
        harness, gateway, options.levels, options.messages, options.drain_timeout, results.levels
    )
    if options.idle_sessions:
        await asyncio.sleep(SETTLE_SECONDS)
        harness.step(f"{options.idle_sessions} idle sessions, held {options.idle_hold:g} s")
        results.idle = await hold_idle_sessions(
            gateway.port, gateway.pid, options.idle_sessions, options.idle_hold
        )
    harness.step("stopping the gateway (SIGTERM)")
    results.exit_code = await gateway.stop()
    results.details = {
        **gateway.log_details(),
        "queue": await asyncio.to_thread(queue_states, gateway.database_url),
    }


async def run(options: Options) -> int:
    started, began = datetime.now(UTC), clock()
    cancel_on_sigterm()
    results = Results()
    async with AsyncExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bsm-scaling-")))
        harness = Harness(stack, workdir, began=began)
        aborted = await bounded(run_all(options, harness, results), options.timeout)
        if aborted or results.misbehaved():
            harness.show_logs()  # still inside the stack: the logs are in its folder
    if aborted:
        console.print(f"[red]benchmark aborted:[/] {aborted}", highlight=False)
    publish(options, started, clock() - began, results, aborted)
    return exit_status(aborted, results.misbehaved())


def publish(
    options: Options, started: datetime, seconds: float, results: Results, aborted: str | None
) -> None:
    facts = machine()
    levels = [level.summary() for level in results.levels]
    idle = None if results.idle is None else results.idle.summary()
    processes = options.processes or f"one per CPU ({facts['cpus_usable']})"
    title = (
        f"[bold]bsm-gateway under concurrent sessions[/bold]: {options.messages} messages a "
        f"level, {options.database}, worker processes: {processes}, Python {facts['python']}"
    )
    console.print(title, highlight=False)
    if levels:
        console.print(sweep_table(levels))
        for note in sweep_notes(levels):
            console.print(note, highlight=False)
        console.print()
    if idle is not None:
        console.print(idle_table(idle))
        for note in idle_notes(idle):
            console.print(note, highlight=False)
    if results.details:
        print_problems(console, results.details)
        console.print(f"gateway exit status after SIGTERM: {results.exit_code}")
    path = save_results(
        "scaling",
        started,
        seconds,
        asdict(options),
        facts,
        aborted=aborted,
        levels=levels,
        idle_sessions=idle,
        exit_code=results.exit_code,
        **results.details,
    )
    console.print(f"results: {path}", highlight=False)


def main(argv: Sequence[str] | None = None) -> None:
    exit_with(run(parse_args(argv)))


if __name__ == "__main__":
    main()
