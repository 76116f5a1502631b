"""IMAP ingest next to the MX: `python -m bench.imap` (what `make bench-imap` runs).

The same seller messages (bench/load.py's ~5 KB order notice, each with its own tag: the
content rules keep the work of the last few texts, so identical copies would be judged
once, and the gateway takes identical bytes from a mailbox once) reach `bsm-gateway serve`
in two ways, measured in turn in each repetition (imap, mx, imap, mx). Each measurement
starts afresh the same gateway (SQLite, the shipped content policy, DKIM signing, a private
Dovecot's mailbox as its IMAP source) and a final sink (Postfix's smtp-sink):

  imap  the messages wait in a staging folder of the Dovecot (tests/support/dovecot.py); the
        clock starts when one UID MOVE puts them all into the source folder the gateway
        IDLEs on, and stops when the last one arrives at the sink. The gateway fetches,
        commits and moves them in batches ([imap] batch).
  mx    the same messages sent over SMTP by --sessions aiosmtplib clients (bench/load.py,
        in this process: they share the machine's CPUs with the gateway) to the MX, timed
        from the first connection to the last arrival.

Reported, as medians over repetitions: delivered msg/s, CPU ms per message of the gateway's
whole process tree (Dovecot's own CPU apart, shown beside it for imap), and imap over mx.
One source is polled by one process at a time, while every process serves the MX: with
several processes (--gateway-processes, default one per CPU) the MX has more cores to use.
The exit status is 1 if a message was lost or duplicated, 2 if the run failed. Dovecot's
master must start as root. Results go to bench/results/imap-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, suppress
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.e2e import GATEWAY_STOP_TIMEOUT, Harness, gateway_command, register
from bench.load import Route, build_jobs, run_clients
from bench.procs import free_port, stop
from bench.proctree import spent, tree_cpu_seconds
from bench.report import machine, rounded, save_results
from bench.runs import bounded, cancel_on_sigterm, exit_status, exit_with
from bench.sink import clock
from bench.smtptools import SMTP_SINK, SinkCounter
from bench.targets import GatewaySetup, final_sink, gateway_config
from tests.support import dovecot as private_dovecot

console = Console()
STAGING = "Staging"
IMAP_SECTION = """
[imap]
batch = {batch}
timeout = 30
[imap.passwords]
bench = "{password}"
[[imap.sources]]
name = "bench"
host = "127.0.0.1"
port = {port}
tls = "none"
user = "{user}"
folder = "INBOX"
move_to = "Processed"
"""


@dataclass(frozen=True, slots=True)
class Options:
    repetitions: int
    messages: int
    sessions: int
    batch: int
    gateway_processes: int | None
    timeout: float
    drain_timeout: float


@dataclass
class Run:
    repetition: int
    way: str  # imap | mx
    messages: int
    delivered: int
    seconds: float | None
    cpu_seconds: float | None
    server_cpu_seconds: float | None = None  # Dovecot's, for imap

    @property
    def rate(self) -> float | None:
        return self.delivered / self.seconds if self.seconds else None

    def per_message(self, seconds: float | None) -> float | None:
        return None if seconds is None or not self.delivered else seconds * 1000 / self.delivered

    @property
    def problem(self) -> str | None:
        if self.delivered != self.messages:
            return f"{self.delivered} of {self.messages} delivered"
        return None


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.imap",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--repetitions", type=int, default=3, help="rounds of imap and mx (3)")
    add("--messages", type=int, default=1000, help="messages per measurement (1000)")
    add("--sessions", type=int, default=20, help="smtp-source sessions for mx (20)")
    add("--batch", type=int, default=50, help="[imap] batch: messages fetched at once (50)")
    add(
        "--gateway-processes",
        type=int,
        help="[server] processes of both gateways (default: the gateway's, one per CPU); "
        "a source is polled by one process at a time, the MX is served by all",
    )
    add("--timeout", type=float, default=1800, help="abort after this many seconds (1800)")
    add("--drain-timeout", type=float, default=120, help="seconds to wait for arrivals (120)")
    args = parser.parse_args(argv)
    counts = (args.repetitions, args.messages, args.sessions, args.batch)
    if min(counts) < 1 or (args.gateway_processes is not None and args.gateway_processes < 1):
        parser.error("counts must be at least 1")
    return Options(**vars(args))


def preflight() -> str | None:
    for program in (SMTP_SINK,):
        if not Path(program).is_file():
            return f"{program} not found (Debian's postfix package)"
    if private_dovecot.DOVECOT is None:
        return "Dovecot is not installed (Debian's dovecot-imapd package)"
    if os.geteuid() != 0:
        return "Dovecot's master must be started as root"
    return None


def _stage(server: private_dovecot.Dovecot, user: str, messages: list[bytes]) -> None:
    with server.session(user) as client:
        client.create(STAGING)
        for message in messages:
            status, data = client.append(STAGING, None, None, message)
            if status != "OK":
                raise RuntimeError(f"APPEND failed: {data!r}")


def _release(server: private_dovecot.Dovecot, user: str) -> None:
    """Every staged message into the source folder at once (RFC 6851 MOVE)."""
    with server.session(user) as client:
        client.select(STAGING)
        status, data = client.uid("MOVE", "1:*", "INBOX")
        if status != "OK":
            raise RuntimeError(f"MOVE failed: {data!r}")


def _dovecot_cpu(server: private_dovecot.Dovecot) -> float | None:
    pid = server.master_pid
    return None if pid is None else tree_cpu_seconds(pid)


@dataclass
class Started:
    """A gateway with the Dovecot mailbox as its source, and the final sink it delivers to."""

    port: int
    route: Route
    pid: int
    counter: SinkCounter
    stop: Callable[[], Awaitable[int | None]]


async def start_gateway(
    options: Options, server: private_dovecot.Dovecot, harness: Harness
) -> Started:
    user = private_dovecot.CATCHALL
    sink_port, counter = await final_sink(harness)
    smtp_port = free_port()
    config = harness.workdir / "gateway.toml"
    database_url = f"sqlite:///{harness.workdir / 'gateway.db'}"
    text = gateway_config(database_url, smtp_port, sink_port, _setup(options))
    text += IMAP_SECTION.format(
        batch=options.batch, password=server.users[user], port=server.port, user=user
    )
    config.write_text(text, "utf-8")
    command = [gateway_command(), "--config", str(config)]
    (route,) = await register(command, pairs=1)
    gateway = await harness.spawn("gateway", [*command, "serve"], smtp_port)
    await asyncio.sleep(1.0)  # connected and idle in the source folder (logs are at warning)

    async def stop_gateway() -> int | None:
        return await stop(gateway, GATEWAY_STOP_TIMEOUT)

    return Started(smtp_port, route, gateway.pid, counter, stop_gateway)


async def measure(
    way: str,
    repetition: int,
    options: Options,
    server: private_dovecot.Dovecot,
    harness: Harness,
) -> Run:
    """The same gateway either way; the same distinct messages (the content rules keep the
    work of the last few texts: identical copies would be judged once)."""
    user = private_dovecot.CATCHALL
    gateway = await start_gateway(options, server, harness)
    jobs = build_jobs(options.messages, [gateway.route])
    if way == "imap":
        head = f"Return-Path: <{gateway.route.mail_from}>\r\n"
        head += f"Delivered-To: {gateway.route.rcpt}\r\n"
        staged = [head.encode() + job.content for job in jobs]
        await asyncio.to_thread(_stage, server, user, staged)
    harness.step(f"{way}: {options.messages} messages")
    cpu_before, dovecot_before = tree_cpu_seconds(gateway.pid), _dovecot_cpu(server)
    began = clock()
    if way == "imap":
        await asyncio.to_thread(_release, server, user)
    else:
        await run_clients(gateway.port, jobs, options.sessions)
    with suppress(TimeoutError):
        async with asyncio.timeout(options.drain_timeout):
            await gateway.counter.wait_for(options.messages)
    cpu_after, dovecot_after = tree_cpu_seconds(gateway.pid), _dovecot_cpu(server)
    last = gateway.counter.last_arrival
    await gateway.stop()
    return Run(
        repetition,
        way,
        options.messages,
        gateway.counter.count,
        None if last is None else last - began,
        spent(cpu_before, cpu_after),
        spent(dovecot_before, dovecot_after) if way == "imap" else None,
    )


def _setup(options: Options) -> GatewaySetup:
    return GatewaySetup(
        most_messages=options.messages, processes=options.gateway_processes, postgres_dsn=""
    )


async def run_all(options: Options, workdir: Path, runs: list[Run]) -> None:
    for repetition in range(1, options.repetitions + 1):
        for way in ("imap", "mx"):
            folder = workdir / f"{repetition}-{way}"
            folder.mkdir()
            async with AsyncExitStack() as stack:
                harness = Harness(stack, folder)
                try:
                    server = stack.enter_context(private_dovecot.running_dovecot())
                    run = await measure(way, repetition, options, server, harness)
                except BaseException:
                    harness.show_logs()
                    raise
            runs.append(run)
            console.print(
                f"        [bold]{way}[/bold]: {run.delivered}/{run.messages} delivered, "
                + (f"{run.rate:.1f} msg/s" if run.rate else "n/a")
                + (
                    f", {run.per_message(run.cpu_seconds):.2f} ms CPU/msg"
                    if run.cpu_seconds
                    else ""
                ),
                highlight=False,
            )


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def publish(
    options: Options, started: datetime, seconds: float, runs: list[Run], aborted: str | None
) -> None:
    if not runs:
        return
    summary: dict[str, dict[str, Any]] = {}
    for way in ("imap", "mx"):
        mine = [r for r in runs if r.way == way]
        summary[way] = {
            "measurements": len(mine),
            "msg_per_s": rounded(_median([r.rate for r in mine]), 1),
            "cpu_ms_per_message": rounded(_median([r.per_message(r.cpu_seconds) for r in mine]), 2),
            "dovecot_cpu_ms_per_message": rounded(
                _median([r.per_message(r.server_cpu_seconds) for r in mine]), 2
            ),
            "problems": [r.problem for r in mine if r.problem],
        }
    imap, mx = summary["imap"], summary["mx"]
    ratio = imap["msg_per_s"] / mx["msg_per_s"] if imap["msg_per_s"] and mx["msg_per_s"] else None
    processes = options.gateway_processes or "one per CPU"
    table = Table(
        title=f"IMAP ingest next to the MX: medians of {options.repetitions} rounds, "
        f"{options.messages} messages, batch {options.batch}, gateway processes: {processes}"
    )
    for header in (
        "way",
        "delivered msg/s",
        "gateway CPU ms/msg",
        "Dovecot CPU ms/msg",
        "problems",
    ):
        table.add_column(header)
    for way, figures in summary.items():
        table.add_row(
            way,
            str(figures["msg_per_s"]),
            str(figures["cpu_ms_per_message"]),
            str(figures["dovecot_cpu_ms_per_message"] or "-"),
            "; ".join(figures["problems"]) or "-",
        )
    console.print(table)
    console.print(f"imap / mx delivered msg/s: {ratio:.2f}x" if ratio else "imap / mx: n/a")
    path = save_results(
        "imap",
        started,
        seconds,
        asdict(options),
        machine(),
        aborted=aborted,
        summary=summary,
        imap_over_mx=rounded(ratio, 3),
        measurements=[{**asdict(r), "msg_per_s": rounded(r.rate, 2)} for r in runs],
    )
    console.print(f"results: {path}", highlight=False)


async def run(options: Options) -> int:
    started, began = datetime.now(UTC), clock()
    reason = preflight()
    if reason:
        console.print(f"[red]cannot run:[/] {reason}", highlight=False)
        return 2
    cancel_on_sigterm()
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="bsm-bench-imap-") as workdir:
        aborted = await bounded(run_all(options, Path(workdir), runs), options.timeout)
    if aborted:
        console.print(f"[red]benchmark aborted:[/] {aborted}", highlight=False)
    publish(options, started, clock() - began, runs, aborted)
    return exit_status(aborted, any(r.problem for r in runs))


def main(argv: Sequence[str] | None = None) -> None:
    exit_with(run(parse_args(argv)))


if __name__ == "__main__":
    main()
