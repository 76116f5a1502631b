"""bsm-gateway next to Postfix: `python -m bench.postfix` (what `make bench-postfix` runs).

The same load, from Postfix's own smtp-source, goes in turn to four targets on 127.0.0.1:

  postfix             a private Postfix instance relaying every message to smtp-sink
  sink                the bare aiosmtpd sink of `make bench` (the floor of SMTP in Python)
  gateway-sqlite      `bsm-gateway serve` on SQLite, delivering to smtp-sink
  gateway-postgresql  the same on PostgreSQL (a fresh schema per measurement)

The gateway runs its shipped content policy, DKIM signing and durable archive, without the
MX path's SPF/DKIM check (sender_auth "none"), submission or metrics; its seller and buyer
are registered through the CLI, and the quota and per-client session and command limits
are raised so that they are not what is measured.

The load: smtp-source sends --messages copies of one ~5 KB seller message (bench/load.py's
order notice, From the seller's registered mailbox, To the buyer's alias) over --sessions
parallel sessions, in two modes: many messages per session (-d) and one message per session.
Each repetition measures every target in each mode, alternating (A B C D, A B C D), every
target started afresh for each measurement and stopped after it.

What is measured, per measurement, and reported as the median over repetitions:
  delivered msg/s   messages counted at the final sink / (smtp-source started -> the last of
                    them arrived). smtp-sink counts with -c (read from a pipe as it comes);
                    bench/sink.py writes a line with its own clock per message.
  CPU ms/message    user + system CPU of the server's whole process tree over the same time,
                    per delivered message: live processes plus the children they reaped
                    (Postfix's master and all its daemons; the gateway and any worker
                    processes), read from /proc. The final sink and smtp-source do not count.
  RSS               the largest sum of VmHWM over the server's live processes, sampled every
                    0.25 s (shared pages count once per process: an upper bound).
  PSS               Pss summed over the server's processes at the end of the load (a shared
                    page split among its sharers).
  PostgreSQL CPU    gateway-postgresql only, under the tables: all of the PostgreSQL
                    server's CPU over the same time (other users' too), per message.
  There is no per-message latency: smtp-source times nothing per message.

The ratios divide by Postfix's figure in the same mode. The exit status is 1 if a message was
refused, lost or duplicated or the gateway did not exit 0 on SIGTERM, 2 if the run failed or
took longer than --timeout, 130 if it was interrupted (Ctrl-C, SIGTERM); every process it
started is stopped first, and what was measured until then is still printed and saved.
Results go to bench/results/postfix-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from rich.console import Console

from bench.comparison import notes, reference_of, render, summarize
from bench.e2e import add_run_limits
from bench.measurement import MODES, Load, Measurement, measure_afresh
from bench.report import machine, save_results
from bench.runs import bounded, cancel_on_sigterm, exit_status, exit_with
from bench.sink import clock
from bench.smtptools import SMTP_SINK, SMTP_SOURCE
from bench.targets import TARGETS, GatewaySetup, postfix_missing

console = Console()


@dataclass(frozen=True, slots=True)
class Options:
    repetitions: int
    messages: int
    gateway_messages: int | None
    sessions: int
    size: int | None
    targets: list[str]
    gateway_processes: int | None
    checkpoint_interval: float
    postgres_dsn: str
    timeout: float
    drain_timeout: float

    def messages_for(self, target: str) -> int:
        if target.startswith("gateway") and self.gateway_messages is not None:
            return self.gateway_messages
        return self.messages


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.postfix",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--repetitions", type=int, default=3, help="rounds over every target and mode (3)")
    add("--messages", type=int, default=2000, help="messages per measurement (2000)")
    add(
        "--gateway-messages",
        type=int,
        help="messages per measurement of the gateway targets (default: --messages)",
    )
    add("--sessions", type=int, default=20, help="parallel smtp-source sessions (20)")
    add(
        "--size",
        type=int,
        help="message size in bytes, by more or fewer care notes "
        "(default: bench/load.py's order notice, ~5 KB)",
    )
    add(
        "--targets",
        nargs="+",
        choices=TARGETS,
        default=list(TARGETS),
        metavar="TARGET",
        help=f"a subset of {', '.join(TARGETS)} (default: all)",
    )
    add(
        "--gateway-processes",
        type=int,
        help="written as [server] processes = N in the gateway's config (default: left out)",
    )
    add(
        "--checkpoint-interval",
        type=float,
        default=1.0,
        help="seconds between the gateway's archive-log checkpoints during the load (1.0: "
        "the log keeps up with intake; 3600: no log work until the run is measured)",
    )
    add_run_limits(parser, timeout=3600, drain_after="smtp-source ends")
    args = parser.parse_args(argv)
    counts = (args.repetitions, args.messages, args.sessions, args.gateway_messages or 1)
    if min(counts) < 1 or (args.gateway_processes is not None and args.gateway_processes < 1):
        parser.error("counts must be at least 1")
    args.targets = [name for name in TARGETS if name in args.targets]  # once each, in order
    return Options(**vars(args))


def preflight(options: Options) -> str | None:
    """Why the run cannot start; None if it can."""
    for program in (SMTP_SOURCE, SMTP_SINK):
        if not Path(program).is_file():
            return f"{program} not found (Debian's postfix package)"
    if "postfix" in options.targets and (missing := postfix_missing()):
        return missing
    if "gateway-postgresql" in options.targets:
        try:
            psycopg.connect(options.postgres_dsn, connect_timeout=5).close()
        except psycopg.Error as error:
            return f"PostgreSQL not reachable: {error}"
    return None


async def run_all(options: Options, workdir: Path, done: list[Measurement]) -> None:
    """Every repetition, mode and target, in turn; each result is appended as it comes."""
    began = clock()
    setup = GatewaySetup(
        most_messages=max(options.messages_for(target) for target in options.targets),
        processes=options.gateway_processes,
        postgres_dsn=options.postgres_dsn,
        checkpoint_interval=options.checkpoint_interval,
    )
    for repetition in range(1, options.repetitions + 1):
        for mode in MODES:
            for target in options.targets:
                load = Load(
                    options.messages_for(target),
                    options.sessions,
                    options.size,
                    options.drain_timeout,
                )
                folder = workdir / f"{repetition}-{mode}-{target}"
                measurement = await measure_afresh(
                    target, mode, repetition, load, setup, folder, began
                )
                done.append(measurement)
                show(measurement)


def show(measurement: Measurement) -> None:
    rate, cpu = measurement.rate, measurement.cpu_ms_per_message
    problems = "; ".join(measurement.problems())
    console.print(
        f"        [bold]{measurement.target}[/bold]: {measurement.delivered}"
        f"/{measurement.messages} delivered, "
        + ("n/a" if rate is None else f"{rate:.1f} msg/s")
        + ", "
        + ("n/a" if cpu is None else f"{cpu:.2f} ms CPU/msg")
        + (f" [red]{problems}[/red]" if problems else ""),
        highlight=False,
    )


async def run(options: Options) -> int:
    started, began = datetime.now(UTC), clock()
    reason = preflight(options)
    if reason:
        console.print(f"[red]cannot run:[/] {reason}", highlight=False)
        return 2
    cancel_on_sigterm()
    done: list[Measurement] = []
    with tempfile.TemporaryDirectory(prefix="bsm-bench-postfix-") as workdir:
        aborted = await bounded(run_all(options, Path(workdir), done), options.timeout)
    if aborted:
        console.print(f"[red]benchmark aborted:[/] {aborted}", highlight=False)
    publish(options, started, clock() - began, done, aborted)
    return exit_status(aborted, any(m.problems() for m in done))


def publish(
    options: Options,
    started: datetime,
    seconds: float,
    done: list[Measurement],
    aborted: str | None,
) -> None:
    if not done:
        return
    summaries = summarize(done)
    facts = machine()
    facts["postfix"] = postfix_version()
    title = (
        f"[bold]bsm-gateway next to Postfix[/bold]: medians of "
        f"{max(s.repetitions for s in summaries)} "
        f"repetitions, {options.sessions} sessions, {done[0].message_bytes} bytes a message, "
        f"{facts['cpus_usable']} CPUs, Python {facts['python']}, Postfix {facts['postfix']}"
    )
    console.print(title, highlight=False)
    for mode in MODES:
        if any(s.mode == mode for s in summaries):
            console.print(render(summaries, mode), "")
    for note in notes(summaries):
        console.print(note, highlight=False)
    path = save_results(
        "postfix",
        started,
        seconds,
        asdict(options),
        facts,
        aborted=aborted,
        summary=[s.as_dict(reference_of(summaries, s.mode)) for s in summaries],
        measurements=[m.summary() for m in done],
    )
    console.print(f"results: {path}", highlight=False)


def postfix_version() -> str | None:
    postconf = shutil.which("postconf", path="/usr/sbin:/sbin:/usr/bin")
    if postconf is None:
        return None
    try:
        done = subprocess.run(
            [postconf, "-h", "-d", "mail_version"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None


def main(argv: Sequence[str] | None = None) -> None:
    exit_with(run(parse_args(argv)))


if __name__ == "__main__":
    main()
