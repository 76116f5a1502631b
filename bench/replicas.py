"""Throughput of 1, 2 and 3 gateway replicas on one PostgreSQL: `python -m bench.replicas`
(what `make bench-replicas` runs), for sizing a deployment.

For each replica count N in --replicas: a fresh PostgreSQL schema, the bare sink
(bench/sink.py), and N `bsm-gateway serve` processes with one worker each (`[server]
processes = 1`: a replica is a container with one core's worth of work), on ports of their
own, all on that schema and delivering to the sink. A seller and its buyers are registered
through the CLI; then --messages ~5 KB order notices go over --sessions concurrent sessions
spread evenly over the replicas (bench/load.py's clients), and the queue drains. Per N:

  delivered msg/s      arrivals at the sink / (first MAIL FROM -> last arrival)
  gateway ms/msg       CPU (user + system) of the replicas' process trees, per message
  database ms/msg      CPU of PostgreSQL's process tree (the postmaster and every backend,
                       other clients' included: run it on a quiet server), per message
  database share       the database's part of the two
  cores busy           both over the wall time

Everything runs on this machine: with more replicas than cores, they share the cores with
PostgreSQL, the clients and the sink, and the table says where the CPU went. The exit status
is 1 if a message was refused, lost or duplicated; 2 if the run failed. Results are saved to
bench/results/replicas-<UTC time>.json with facts about the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from collections.abc import Sequence
from contextlib import AsyncExitStack, suppress
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.e2e import (
    Harness,
    add_run_limits,
    database_url,
    gateway_command,
    queue_states,
    register,
)
from bench.load import Arrivals, build_jobs, figures, run_clients
from bench.procs import free_port
from bench.proctree import spent, tree_cpu_seconds
from bench.report import machine, plain_table, rounded, save_results
from bench.runs import bounded, cancel_on_sigterm, exit_status, exit_with
from bench.sink import clock
from bench.targets import GatewaySetup, gateway_config, postmaster_pid

PAIRS = 4
console = Console()


@dataclass(frozen=True, slots=True)
class Options:
    replicas: list[int]
    messages: int
    sessions: int
    postgres_dsn: str
    timeout: float
    drain_timeout: float


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.replicas",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--replicas", type=int, nargs="+", default=[1, 2, 3], metavar="N", help="(1 2 3)")
    add("--messages", type=int, default=3000, help="messages per replica count (3000)")
    add("--sessions", type=int, default=24, help="concurrent sessions, spread evenly (24)")
    add_run_limits(parser, timeout=1800, drain_after="the last 250")
    args = parser.parse_args(argv)
    if min(*args.replicas, args.messages, args.sessions) < 1:
        parser.error("--replicas, --messages and --sessions must be at least 1")
    return Options(**vars(args))


@dataclass(frozen=True, slots=True)
class Row:
    replicas: int
    accepted: int
    delivered: int
    problems: list[str]
    seconds: float  # first MAIL FROM to the queue drained
    delivered_per_second: float | None
    gateway_cpu: float | None
    database_cpu: float | None

    def per_message_ms(self, cpu: float | None) -> float | None:
        return None if cpu is None or not self.delivered else 1000 * cpu / self.delivered

    @property
    def database_share(self) -> float | None:
        if self.gateway_cpu is None or self.database_cpu is None:
            return None
        total = self.gateway_cpu + self.database_cpu
        return self.database_cpu / total if total else None

    def summary(self) -> dict[str, Any]:
        return {
            "replicas": self.replicas,
            "accepted": self.accepted,
            "delivered": self.delivered,
            "problems": self.problems,
            "seconds": rounded(self.seconds, 2),
            "delivered_per_second": rounded(self.delivered_per_second, 1),
            "gateway_cpu_ms_per_message": rounded(self.per_message_ms(self.gateway_cpu), 2),
            "database_cpu_ms_per_message": rounded(self.per_message_ms(self.database_cpu), 2),
            "database_share": rounded(self.database_share, 3),
            "cores_busy": rounded(
                ((self.gateway_cpu or 0) + (self.database_cpu or 0)) / self.seconds, 2
            )
            if self.seconds
            else None,
        }


async def _drained(url: str) -> None:
    while True:  # a count in the database: there is no event to wait on
        if not (await asyncio.to_thread(queue_states, url)).get("queued", {}).get("rows"):
            return
        await asyncio.sleep(0.2)


def _cpu(pids: Sequence[int]) -> float | None:
    readings = [tree_cpu_seconds(pid) for pid in pids]
    return None if any(r is None for r in readings) else sum(r for r in readings if r)


async def measure(options: Options, replicas: int, workdir: Path) -> Row:
    async with AsyncExitStack() as stack:
        folder = workdir / f"replicas-{replicas}"
        folder.mkdir()
        harness = Harness(stack, folder)
        _, sink_port, arrivals_file = await harness.sink("sink")
        url = database_url(harness, "postgresql", options.postgres_dsn)
        database = await asyncio.to_thread(postmaster_pid, options.postgres_dsn)
        setup = GatewaySetup(
            most_messages=options.messages,
            processes=1,
            postgres_dsn=options.postgres_dsn,
            most_sessions=options.sessions + 10,
        )
        ports, pids, routes = [], [], []
        for number in range(replicas):
            port = free_port()
            config = folder / f"gateway-{number}.toml"
            config.write_text(gateway_config(url, port, sink_port, setup), "utf-8")
            command = [gateway_command(), "--config", str(config)]
            if number == 0:
                harness.step(f"{replicas} replicas: registering a seller and {PAIRS} buyers")
                routes = await register(command, PAIRS)
            child = await harness.spawn(f"gateway-{number}", [*command, "serve"], port)
            ports.append(port)
            pids.append(child.pid)
        jobs = build_jobs(options.messages, routes)
        shares = [jobs[n::replicas] for n in range(replicas)]
        sessions = max(1, options.sessions // replicas)
        arrivals = Arrivals.from_now(arrivals_file.path)
        harness.step(f"{options.messages} messages over {sessions * replicas} sessions")
        gateway_before, database_before = _cpu(pids), _cpu([database] if database else [])
        began = clock()
        results = await asyncio.gather(
            *(run_clients(port, share, sessions) for port, share in zip(ports, shares, strict=True))
        )
        samples = [sample for result in results for sample in result]
        accepted = {sample.token for sample in samples if sample.error is None}
        with suppress(TimeoutError):
            async with asyncio.timeout(options.drain_timeout):
                await arrivals.wait_for(accepted)
                await _drained(url)
        seconds = clock() - began
        gateway_cpu = spent(gateway_before, _cpu(pids))
        database_cpu = spent(database_before, _cpu([database] if database else []))
        arrivals.poll()
        found = figures(samples, arrivals)
        problems = [
            f"{count} {what}"
            for what, count in (
                ("refused or failed", sum(found.errors.values())),
                ("lost", found.lost),
                ("duplicated", found.duplicates),
            )
            if count
        ]
        return Row(
            replicas,
            found.accepted,
            found.delivered,
            problems,
            seconds,
            found.end_to_end_rate,
            gateway_cpu,
            database_cpu,
        )


async def run(options: Options) -> int:
    started, began = datetime.now(UTC), clock()
    cancel_on_sigterm()
    rows: list[Row] = []

    async def all_counts(workdir: Path) -> None:
        for replicas in options.replicas:
            rows.append(await measure(options, replicas, workdir))

    with tempfile.TemporaryDirectory(prefix="bsm-replicas-") as workdir:
        aborted = await bounded(all_counts(Path(workdir)), options.timeout)
    if aborted:
        console.print(f"[red]benchmark aborted:[/] {aborted}", highlight=False)
    summaries = [row.summary() for row in rows]
    publish(options, summaries)
    path = save_results(
        "replicas", started, clock() - began, asdict(options), machine(), replicas=summaries
    )
    console.print(f"saved to {path}", highlight=False)
    return exit_status(aborted, any(row.problems for row in rows))


def publish(options: Options, summaries: list[dict[str, Any]]) -> None:
    facts = machine()
    table = plain_table(
        f"bsm-gateway replicas on one PostgreSQL: {options.messages} messages each, "
        f"{options.sessions} sessions, {facts['cpus_usable']} CPUs",
        "ms/msg: CPU per delivered message; database share: PostgreSQL's part of the CPU",
    )
    for header in (
        "replicas",
        "delivered msg/s",
        "gateway ms/msg",
        "database ms/msg",
        "database share",
        "cores busy",
        "problems",
    ):
        table.add_column(header, justify="left" if header == "problems" else "right")
    for row in summaries:
        share = row["database_share"]
        table.add_row(
            str(row["replicas"]),
            _text(row["delivered_per_second"]),
            _text(row["gateway_cpu_ms_per_message"]),
            _text(row["database_cpu_ms_per_message"]),
            "n/a" if share is None else f"{100 * share:.0f} %",
            _text(row["cores_busy"]),
            "; ".join(row["problems"]) or "none",
        )
    console.print(table)


def _text(value: float | None) -> str:
    return "n/a" if value is None else f"{value:g}"


if __name__ == "__main__":
    exit_with(run(parse_args()))
