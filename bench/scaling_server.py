"""The gateway `python -m bench.scaling` measures: `bsm-gateway serve`, started once for the
whole run as `make bench` starts it, delivering over smtp:// to the bare sink
(bench/sink.py), whose arrival file says when each message arrived. Both are stopped by the
harness on every way out."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from bench.e2e import (
    GATEWAY_STOP_TIMEOUT,
    Harness,
    database_url,
    gateway_command,
    queue_states,
    register,
    seller_dns,
)
from bench.load import Route
from bench.procs import Child, free_port, log_problems, stop
from bench.targets import GatewaySetup, gateway_config

PAIRS = 4  # buyer-seller pairs the load writes to, as in `make bench`


@dataclass(frozen=True, slots=True)
class ServedGateway:
    """A running gateway: where to send, to whom, and where its deliveries are written."""

    child: Child
    port: int
    routes: list[Route]
    arrivals_path: Path  # the sink's
    database_url: str

    @property
    def pid(self) -> int:
        """The process whose tree is the gateway (the parent of its workers)."""
        return self.child.pid

    async def queued(self) -> int:
        """Messages still waiting in the gateway's delivery queue."""
        states = await asyncio.to_thread(queue_states, self.database_url)
        return states.get("queued", {}).get("rows", 0)

    async def stop(self) -> int | None:
        """SIGTERM; the exit status (None: it had to be killed)."""
        return await stop(self.child, GATEWAY_STOP_TIMEOUT)

    def log_details(self) -> dict[str, object]:
        count, first = log_problems(self.child.log_path)
        return {"log_problem_count": count, "log_problems": first}


async def start_gateway(harness: Harness, database: str, setup: GatewaySetup) -> ServedGateway:
    """The sink, then the gateway on `database` ("sqlite" or "postgresql"), its seller and
    buyers registered through the CLI."""
    _, sink_port, arrivals = await harness.sink("sink")
    url = database_url(harness, database, setup.postgres_dsn)
    dns_port = None if setup.sender_auth == "none" else seller_dns(harness)
    smtp_port = free_port()
    config = harness.workdir / "gateway.toml"
    config.write_text(gateway_config(url, smtp_port, sink_port, setup, dns_port), "utf-8")
    command = [gateway_command(), "--config", str(config)]
    harness.step(f"registering a seller and {PAIRS} buyers through the CLI")
    routes = await register(command, PAIRS)
    harness.step("starting bsm-gateway serve")
    child = await harness.spawn("gateway", [*command, "serve"], smtp_port)
    return ServedGateway(child, smtp_port, routes, arrivals.path, url)
