"""End-to-end benchmark of bsm-gateway: `python -m bench.e2e` (what `make bench` runs).

Two runs of the same load, every server in its own process, all traffic on 127.0.0.1:

  baseline  clients -> a bare aiosmtpd sink (bench/sink.py) that answers 250 and discards.
            The cost of SMTP in Python on this machine: the floor the gateway is compared to.
  gateway   clients -> `bsm-gateway serve` -> its delivery workers (smtp://) -> a second sink.
            The gateway parses, judges, rewrites and commits each message to its database
            (SQLite by default, PostgreSQL with --database postgresql) before its 250, then
            delivers it from the queue.

The load: --clients concurrent aiosmtplib connections, each kept open and sending one
message at a time, share --messages ~5 KB plain-text order notices from a seller's
registered mailbox to buyer aliases (--pairs pairs, registered through the CLI). All
messages are built before the clock starts.

What is measured:
  SMTP-in msg/s        250s / (first send start -> last 250)
  end-to-end msg/s     messages at the sink / (first send start -> last arrival at the sink)
  accept latency       per message: client send start (MAIL FROM) -> 250 after DATA
  end-to-end latency   per message: client send start -> arrival at the sink. The sink keys
                       arrivals by a `[bench:N]` tag in Subject, which the gateway keeps (it
                       replaces Message-ID and drops X- headers); sink and clients both read
                       CLOCK_MONOTONIC, one clock for all processes on Linux.
  peak RSS             VmHWM summed over the server's processes just before SIGTERM: the
                       sink in the baseline, the gateway (its parent and its worker
                       processes) in the gateway run.
  server CPU           user + system CPU of the same processes while the load ran, per
                       message sent.
  p50 and p99 are nearest-rank percentiles (values actually observed).

Reading the ratios (gateway / baseline): absolute figures depend on the machine, and the
clients share its CPUs with the servers; the ratios depend on it much less, so compare ratios
across machines and absolute figures only on one machine. For msg/s, a ratio below 1 is the
share of bare-SMTP throughput the gateway keeps (0.25x: a quarter). For latency and RSS, a
ratio above 1 is how many times slower or bigger the gateway is. In the baseline a 250 and an
arrival are the same event, so its end-to-end figures equal its SMTP-in ones.

Nothing is asserted about timing. The exit status is 1 if the gateway refused, lost or
duplicated a message or did not exit 0 on SIGTERM (figures are still printed and saved), and
2 if the run failed or took longer than --timeout (every subprocess is stopped first). The
results go to bench/results/e2e-<UTC time>.json, with facts about the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import AsyncExitStack, contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql
from rich.console import Console
from sqlalchemy import func, select

from bench.load import Arrivals, Figures, Route, build_jobs, figures, run_clients
from bench.procs import (
    BenchError,
    Child,
    cli_json,
    ensure_stopped,
    free_port,
    log_problems,
    start,
    stop,
    wait_listening,
)
from bench.proctree import spent, tree_cpu_seconds, tree_peak_rss_mib
from bench.report import RunReport, machine, print_run, ratios, save_results
from bench.runs import ABORTING, exit_with
from bench.sink import clock
from gateway.storage.database import Database
from gateway.storage.schema import Outbound
from tests.support.dns import local_dns

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
SELLER_MAILBOX = "seller@shop.example"
SINK_STOP_TIMEOUT = 10.0
GATEWAY_SHUTDOWN_GRACE = 5  # [smtp] shutdown_grace in the benchmark's config
GATEWAY_STOP_TIMEOUT = 30.0  # grace, plus workers finishing their delivery in flight

GATEWAY_CONFIG = """\
database_url = {database_url}

[smtp]
port = {smtp_port}
shutdown_grace = {grace}
starttls = false          # the load clients send in plain text, as the baseline's do
sender_auth = "{sender_auth}"

[dns]
nameservers = ["127.0.0.1"]
port = {dns_port}

[submission]
enabled = false

[rules]
quota_base = 1000000      # one seller sends the whole run: its daily quota is not measured here

[metrics]
enabled = false

[auditor]
enabled = false

[delivery]
transport = {transport}
workers = {workers}
poll_interval = 0.1
# A transient failure is retried within the run rather than after the default minute.
retry_schedule = [1.0]
attempt_timeout = 10

[log]
level = "warning"
format = "json"
"""

console = Console()


@dataclass(frozen=True, slots=True)
class Options:
    clients: int
    messages: int
    pairs: int
    workers: int
    database: str
    sender_auth: str
    postgres_dsn: str
    timeout: float
    drain_timeout: float


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.e2e",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--clients", type=int, default=8, help="concurrent SMTP connections (default 8)")
    add("--messages", type=int, default=2000, help="messages per run (default 2000)")
    add("--pairs", type=int, default=4, help="buyer-seller pairs written to (default 4)")
    add("--workers", type=int, default=4, help="gateway delivery workers (default 4)")
    add_gateway_choices(parser, sender_auth="aligned")
    add_run_limits(parser, timeout=300, drain_after="the last 250")
    args = parser.parse_args(argv)
    if min(args.clients, args.messages, args.pairs, args.workers) < 1:
        parser.error("--clients, --messages, --pairs and --workers must be at least 1")
    return Options(**vars(args))


def add_gateway_choices(parser: argparse.ArgumentParser, *, sender_auth: str) -> None:
    """--database and --sender-auth: the gateway's store and its MX path's sender check."""
    add = parser.add_argument
    add("--database", choices=("sqlite", "postgresql"), default="sqlite")
    add(
        "--sender-auth",
        choices=("aligned", "none"),
        default=sender_auth,
        help=f"the MX path's DKIM/SPF check, against a local DNS server (default {sender_auth})",
    )


def add_run_limits(parser: argparse.ArgumentParser, *, timeout: int, drain_after: str) -> None:
    """--postgres-dsn, --timeout and --drain-timeout: what every run that starts servers has."""
    add = parser.add_argument
    add("--postgres-dsn", default=DEFAULT_POSTGRES, help=f"default {DEFAULT_POSTGRES}")
    add("--timeout", type=float, default=timeout, help=f"abort after this many seconds ({timeout})")
    add(
        "--drain-timeout",
        type=float,
        default=120,
        help=f"seconds to wait, after {drain_after}, for messages to reach the sink (120)",
    )


@dataclass
class Harness:
    """The run's temporary folder and subprocesses; whatever happens, all are cleaned up."""

    stack: AsyncExitStack
    workdir: Path
    children: list[Child] = field(default_factory=list)
    began: float = field(default_factory=clock)

    def step(self, text: str) -> None:
        """Progress on the console, with the seconds since the start."""
        console.print(f"[dim]{clock() - self.began:6.1f} s[/dim]  {text}", highlight=False)

    async def spawn(self, name: str, argv: Sequence[str], port: int) -> Child:
        child = await start(name, argv, self.workdir / f"{name}.log")
        self.children.append(child)
        self.stack.push_async_callback(ensure_stopped, child)
        await wait_listening(child, port)
        return child

    async def sink(self, name: str) -> tuple[Child, int, Arrivals]:
        port = free_port()
        arrivals = self.workdir / f"{name}.arrivals"
        argv = [
            sys.executable,
            "-m",
            "bench.sink",
            "--port",
            str(port),
            "--arrivals",
            str(arrivals),
        ]
        return await self.spawn(name, argv, port), port, Arrivals(arrivals)

    def show_logs(self) -> None:
        for child in self.children:
            tail = child.log_tail()
            if tail:
                console.rule(f"last lines of the {child.name} log")
                console.print(tail, markup=False, highlight=False, soft_wrap=True)


# -- the runs --------------------------------------------------------------------------


async def measure(
    harness: Harness, port: int, routes: Sequence[Route], arrivals: Arrivals, options: Options
) -> Figures:
    jobs = build_jobs(options.messages, routes)
    harness.step(f"sending {len(jobs)} messages over {options.clients} connections")
    samples = await run_clients(port, jobs, options.clients)
    accepted = {sample.token for sample in samples if sample.error is None}
    harness.step(f"{len(accepted)} accepted; waiting for them at the sink")
    # A message that never arrives is counted as lost, not waited for past the drain time.
    with suppress(TimeoutError):
        async with asyncio.timeout(options.drain_timeout):
            await arrivals.wait_for(accepted)
    return figures(samples, arrivals)


async def run_baseline(harness: Harness, options: Options) -> RunReport:
    sink, port, arrivals = await harness.sink("baseline-sink")
    # Recipients shaped like the gateway's aliases, so both runs send the same bytes.
    routes = [Route(SELLER_MAILBOX, f"b{n:015d}@relay.example.test") for n in range(options.pairs)]
    cpu_before = tree_cpu_seconds(sink.pid)
    result = await measure(harness, port, routes, arrivals, options)
    rss, cpu = tree_peak_rss_mib(sink.pid), spent(cpu_before, tree_cpu_seconds(sink.pid))
    return RunReport("baseline", result, rss, cpu, await stop(sink, SINK_STOP_TIMEOUT))


async def run_gateway(harness: Harness, options: Options, database_url: str) -> RunReport:
    sink, sink_port, arrivals = await harness.sink("gateway-sink")
    smtp_port = free_port()
    dns_port = seller_dns(harness)
    config = write_config(harness.workdir, database_url, smtp_port, sink_port, options, dns_port)
    command = [gateway_command(), "--config", str(config)]
    harness.step(f"registering a seller and {options.pairs} buyers through the CLI")
    routes = await register(command, options.pairs)
    harness.step("starting bsm-gateway serve")
    gateway = await harness.spawn("gateway", [*command, "serve"], smtp_port)
    cpu_before = tree_cpu_seconds(gateway.pid)
    result = await measure(harness, smtp_port, routes, arrivals, options)
    rss, sink_rss = tree_peak_rss_mib(gateway.pid), tree_peak_rss_mib(sink.pid)
    cpu = spent(cpu_before, tree_cpu_seconds(gateway.pid))
    harness.step("stopping the gateway (SIGTERM)")
    exit_code = await stop(gateway, GATEWAY_STOP_TIMEOUT)
    await stop(sink, SINK_STOP_TIMEOUT)
    problem_count, problems = log_problems(gateway.log_path)
    details = {
        "sink_peak_rss_mib": None if sink_rss is None else round(sink_rss, 1),
        "queue": await asyncio.to_thread(queue_states, database_url),
        "log_problem_count": problem_count,
        "log_problems": problems,
    }
    return RunReport("gateway", result, rss, cpu, exit_code, details)


def seller_dns(harness: Harness) -> int:
    """A DNS server on loopback, stopped with the harness, whose SPF record for the seller's
    domain lets the load clients (on loopback) send for it: an SPF pass. Its port."""
    dns = harness.stack.enter_context(local_dns())
    dns.zones.txt[SELLER_MAILBOX.split("@")[1]] = ["v=spf1 ip4:127.0.0.1 -all"]
    return dns.port


def gateway_command() -> str:
    """The bsm-gateway script of this interpreter's environment (.venv/bin/bsm-gateway)."""
    beside = Path(sys.executable).with_name("bsm-gateway")
    found = str(beside) if beside.is_file() else shutil.which("bsm-gateway")
    if found is None:
        raise BenchError("bsm-gateway not installed: run `make` or `pip install -e .` first")
    return found


def write_config(
    folder: Path,
    database_url: str,
    smtp_port: int,
    sink_port: int,
    options: Options,
    dns_port: int,
) -> Path:
    path = folder / "gateway.toml"
    text = GATEWAY_CONFIG.format(
        # json.dumps quotes a string the way TOML's basic strings want it.
        database_url=json.dumps(database_url),
        smtp_port=smtp_port,
        grace=GATEWAY_SHUTDOWN_GRACE,
        transport=json.dumps(f"smtp://127.0.0.1:{sink_port}"),
        workers=options.workers,
        sender_auth=options.sender_auth,
        dns_port=dns_port,
    )
    path.write_text(text, encoding="utf-8")
    return path


async def register(command: Sequence[str], pairs: int) -> list[Route]:
    """A seller and `pairs` buyers with an order each, through the CLI as an operator would."""
    seller = await cli_json([*command, "seller", "add", "Bench Shop", "--mailbox", SELLER_MAILBOX])
    buyers = await asyncio.gather(
        *(cli_json([*command, "buyer", "add", f"buyer{n}@mail.example"]) for n in range(pairs))
    )
    order_add = [*command, "order", "add", "--seller", str(seller["seller_id"])]
    orders = await asyncio.gather(
        *(cli_json([*order_add, "--buyer", str(buyer["buyer_id"])]) for buyer in buyers)
    )
    return [Route(SELLER_MAILBOX, order["buyer_alias"]) for order in orders]


def queue_states(database_url: str) -> dict[str, dict[str, int]]:
    """Rows and delivery attempts per outbound state: retries and failures the log (at
    warning level) does not show."""
    database = Database.from_url(database_url)
    try:
        with database.transaction() as session:
            found = session.execute(
                select(Outbound.state, func.count(), func.sum(Outbound.attempts)).group_by(
                    Outbound.state
                )
            ).all()
    finally:
        database.dispose()
    return {state: {"rows": rows, "attempts": int(tries or 0)} for state, rows, tries in found}


@contextmanager
def postgres_schema(dsn: str) -> Iterator[str]:
    """A fresh schema for one run, dropped after it; yields the gateway's URL for it."""
    schema = f"bsm_bench_{secrets.token_hex(4)}"
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as connection:
        connection.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    base = dsn.replace("postgresql://", "postgresql+psycopg://", 1)
    separator = "&" if "?" in base else "?"
    try:
        yield f"{base}{separator}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as connection:
            connection.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def database_url(harness: Harness, database: str, postgres_dsn: str) -> str:
    """The gateway's database: SQLite in the run's folder, or a fresh PostgreSQL schema
    dropped with the harness."""
    if database == "postgresql":
        return harness.stack.enter_context(postgres_schema(postgres_dsn))
    return f"sqlite:///{harness.workdir / 'gateway.db'}"


# -- putting it together ---------------------------------------------------------------


async def run_both(harness: Harness, options: Options) -> tuple[RunReport, RunReport]:
    harness.step("[bold]baseline[/bold]: clients -> sink")
    baseline = await run_baseline(harness, options)
    harness.step(f"[bold]gateway[/bold] ({options.database}): clients -> bsm-gateway -> sink")
    url = database_url(harness, options.database, options.postgres_dsn)
    gateway = await run_gateway(harness, options, url)
    return baseline, gateway


async def run(options: Options) -> int:
    started, began = datetime.now(UTC), clock()
    async with AsyncExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bsm-bench-")))
        harness = Harness(stack, workdir)
        try:
            async with asyncio.timeout(options.timeout):
                baseline, gateway = await run_both(harness, options)
        except ABORTING as error:
            reason = str(error) or f"took longer than --timeout {options.timeout:.0f} s"
            console.print(f"[red]benchmark aborted:[/] {reason}", highlight=False)
            harness.show_logs()
            return 2
        # Still inside the stack: the logs are in the temporary folder.
        if misbehaved(gateway):
            harness.show_logs()
    publish(options, started, clock() - began, baseline, gateway)
    return 1 if misbehaved(gateway) else 0


def misbehaved(report: RunReport) -> bool:
    """Refused, lost or duplicated messages, or no clean exit (None: it had to be killed)."""
    result = report.figures
    return report.exit_code != 0 or bool(
        result.errors or result.lost or result.duplicates or result.unexpected
    )


def publish(
    options: Options, started: datetime, seconds: float, baseline: RunReport, gateway: RunReport
) -> None:
    runs = {"baseline": baseline.summary(), "gateway": gateway.summary()}
    facts = machine()
    title = (
        f"bsm-gateway e2e: {options.messages} messages, {options.clients} clients, "
        f"{options.database}, {facts['cpus_usable']} CPUs, Python {facts['python']}"
    )
    print_run(console, runs["baseline"], runs["gateway"], title)
    path = save_results(
        "e2e",
        started,
        seconds,
        asdict(options),
        facts,
        runs=runs,
        ratios_gateway_to_baseline=ratios(runs["baseline"], runs["gateway"]),
    )
    console.print(f"results: {path}", highlight=False)


def main(argv: Sequence[str] | None = None) -> None:
    exit_with(run(parse_args(argv)))


if __name__ == "__main__":
    main()
