"""Intake while the archive is purged: `python -m bench.purge` (`make bench-purge`).

Fills a fresh database with --records archive records received three years ago (past the
two years' retention; bench.archive's generator), appends them to the archive log, starts
`bsm-gateway serve` delivering to a bare aiosmtpd sink, and sends messages over --clients
connections twice: once alone, then while `bsm-gateway archive purge` deletes those
records in its batches. It reports the purge's time and the intake's latency (SMTP
session, MAIL to 250 after DATA) p50, p99 and the longest, alone and during the purge.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console

from bench.archive import build
from bench.e2e import (
    DEFAULT_POSTGRES,
    Harness,
    Options,
    database_url,
    gateway_command,
    register,
    seller_dns,
    write_config,
)
from bench.load import Route, Sample, build_jobs, percentile, run_clients
from bench.procs import free_port
from bench.report import machine, save_results
from bench.runs import exit_with
from bench.sink import clock
from gateway.audit.checkpointer import Checkpointer
from gateway.audit.signing import new_log_key
from gateway.core.clock import SystemClock
from gateway.storage.archive_keys import ArchiveKeyStore
from gateway.storage.migrate import open_database

console = Console()
ROUND = 200  # messages sent per round while the purge runs


@dataclass(frozen=True)
class Latency:
    messages: int
    errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float


def latency(samples: Sequence[Sample]) -> Latency:
    times = [(s.finished - s.started) * 1000 for s in samples if s.error is None]
    return Latency(
        messages=len(samples),
        errors=sum(1 for s in samples if s.error is not None),
        p50_ms=round(percentile(times, 50) or 0, 1),
        p99_ms=round(percentile(times, 99) or 0, 1),
        max_ms=round(max(times, default=0), 1),
    )


def prefill(url: str, records: int) -> None:
    """`records` archive records three years old, in the log and signed."""
    database = open_database(url)
    try:
        build(database, records, ending=datetime.now(UTC) - timedelta(days=3 * 365))
        key = ArchiveKeyStore(database, SystemClock()).ensure_active(new_log_key)
        Checkpointer(database, key, SystemClock()).run_once()
    finally:
        database.dispose()


async def purge_while_sending(
    command: Sequence[str], port: int, routes: Sequence[Route], clients: int
) -> tuple[list[Sample], float, dict[str, int]]:
    """Rounds of messages for as long as the purge runs: the samples, the purge's seconds
    and its result."""
    purge = await asyncio.create_subprocess_exec(
        *command, "archive", "purge", "--json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    started = time.perf_counter()
    finished = asyncio.ensure_future(purge.communicate())
    samples: list[Sample] = []
    first = 100_000
    while not finished.done():
        samples += await run_clients(port, build_jobs(ROUND, routes, first=first), clients)
        first += ROUND
    out, _ = await finished
    took = time.perf_counter() - started
    return samples, took, json.loads(out.decode().strip().splitlines()[-1])


async def run(args: argparse.Namespace) -> int:
    started = datetime.now(UTC)
    began = clock()
    async with AsyncExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bsm-purge-")))
        harness = Harness(stack, workdir)
        url = database_url(harness, args.database, args.postgres_dsn)
        harness.step(f"filling the archive with {args.records:,} records three years old")
        await asyncio.to_thread(prefill, url, args.records)
        _, sink_port, _ = await harness.sink("sink")
        smtp_port = free_port()
        options = Options(args.clients, args.messages, 4, 4, args.database, "none",
                          args.postgres_dsn, 0, 0)  # fmt: skip
        config = write_config(workdir, url, smtp_port, sink_port, options, seller_dns(harness))
        command = [gateway_command(), "--config", str(config)]
        routes = await register(command, 4)
        await harness.spawn("gateway", [*command, "serve"], smtp_port)
        harness.step(f"{args.messages} messages over {args.clients} connections, alone")
        alone = latency(await run_clients(smtp_port, build_jobs(args.messages, routes),
                                          args.clients))  # fmt: skip
        harness.step("the same load while `archive purge` runs")
        samples, purge_seconds, purged = await purge_while_sending(
            command, smtp_port, routes, args.clients
        )
        during = latency(samples)
    console.print(
        f"purge of {purged['purged']:,} records ({args.database}) took {purge_seconds:.1f} s "
        f"in {purged['batches']} batches"
    )
    for name, figures in (("alone", alone), ("during the purge", during)):
        console.print(
            f"  intake {name:<17} {figures.messages:>6} messages  p50 {figures.p50_ms:7.1f} ms"
            f"  p99 {figures.p99_ms:7.1f} ms  max {figures.max_ms:7.1f} ms"
            f"  errors {figures.errors}"
        )
    path = save_results(
        "purge", started, clock() - began, vars(args), machine(),
        purge_seconds=round(purge_seconds, 1), purged=purged,
        alone=vars(alone), during_purge=vars(during),
    )  # fmt: skip
    console.print(f"results: {path}")
    return 1 if alone.errors or during.errors else 0


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.purge",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--records", type=int, default=100_000, help="to purge (100,000)")
    parser.add_argument("--messages", type=int, default=2000, help="sent alone (2000)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--postgres-dsn", default=DEFAULT_POSTGRES)
    exit_with(run(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
