"""The servers `python -m bench.postfix` compares, each started afresh for one measurement:

  postfix            a private Postfix instance (tests/support/postfix.py) relaying to smtp-sink
  sink               the bare aiosmtpd sink (bench/sink.py), itself the final sink
  gateway-sqlite     `bsm-gateway serve` on SQLite, delivering to smtp-sink
  gateway-postgresql the same on PostgreSQL, in a schema of its own

Each is started on the measurement's AsyncExitStack, which stops it (and its sink) on every
way out.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import psycopg

from bench.e2e import (
    GATEWAY_SHUTDOWN_GRACE,
    GATEWAY_STOP_TIMEOUT,
    SINK_STOP_TIMEOUT,
    Harness,
    gateway_command,
    postgres_schema,
    register,
)
from bench.load import read_arrivals
from bench.procs import (
    LOOPBACK,
    BenchError,
    ensure_stopped,
    free_port,
    log_problems,
    stop,
    wait_listening,
)
from bench.sink import UNTAGGED
from bench.smtptools import SinkCounter, start_smtp_sink
from tests.support import postfix as private_postfix

TARGETS = ("postfix", "sink", "gateway-sqlite", "gateway-postgresql")
# Shaped like a gateway alias, so that every target is sent the same bytes.
ALIAS_LIKE = "b000000000000000@relay.example.test"
MAILLOG_STATUS = re.compile(r" status=(\w+)")
ARRIVALS_POLL = 0.01  # seconds between reads of bench/sink.py's arrival file

GATEWAY_CONFIG = """\
database_url = {database_url}

[smtp]
port = {smtp_port}
shutdown_grace = {grace}
starttls = false               # the load speaks plain SMTP
sender_auth = "{sender_auth}"  # "none": no SPF or DKIM check on the MX path
max_sessions_per_client = {max_sessions} # every load session comes from 127.0.0.1
max_commands = {max_commands}  # one reused session may carry every message of the run

[submission]
enabled = false

[rules]
quota_base = 1000000           # one seller sends everything: the daily quota is not measured

[metrics]
enabled = false

[auditor]
enabled = false

[delivery]
transport = {transport}
workers = 4
poll_interval = 0.1
retry_schedule = [1.0]         # a transient failure is retried within the run
attempt_timeout = 10

[log]
level = "warning"
format = "json"
"""
SERVER_SECTION = "\n[server]\nprocesses = {processes}\n"
ARCHIVE_SECTION = "\n[archive]\ncheckpoint_interval = {interval}\n"
# Where the MX path's SPF and DKIM look-ups go when sender_auth is not "none".
DNS_SECTION = '\n[dns]\nnameservers = ["{host}"]\nport = {port}\n'


class ArrivalCount(Protocol):
    """Messages seen at a target's final sink, and when the last one came."""

    @property
    def count(self) -> int: ...

    @property
    def last_arrival(self) -> float | None: ...

    async def wait_for(self, expected: int) -> None: ...


@dataclass
class ArrivalLines:
    """Arrivals at bench/sink.py: one line per message in its arrival file, each with the
    time the sink took it (every copy smtp-source sends carries the same tag)."""

    path: Path
    count: int = 0
    last_arrival: float | None = None
    _offset: int = 0

    def poll(self) -> None:
        self._offset, arrived = read_arrivals(self.path, self._offset)
        for token, seconds in arrived:
            if token != UNTAGGED:
                self.count += 1
                self.last_arrival = seconds

    async def wait_for(self, expected: int) -> None:
        while True:
            self.poll()
            if self.count >= expected:
                return
            await asyncio.sleep(ARRIVALS_POLL)


@dataclass
class Server:
    """A started target: where smtp-source sends and to whom, the process whose tree is the
    server (CPU and memory are of the whole tree), and how its arrivals are counted."""

    port: int
    recipient: str
    root_pid: int
    arrivals: ArrivalCount
    # Stops the server; its exit status (None where there is none: Postfix, a kill).
    stop: Callable[[], Awaitable[int | None]]
    details: Callable[[], dict[str, object]] = field(default=lambda: {})
    # A process tree that works for the server but is shared with others: PostgreSQL's.
    database_pid: int | None = None


@dataclass(frozen=True, slots=True)
class GatewaySetup:
    most_messages: int  # that one reused session may carry: the gateway's max_commands
    processes: int | None  # [server] processes; None: the key is left out
    postgres_dsn: str
    most_sessions: int = 1000  # open at once, all from 127.0.0.1: max_sessions_per_client
    sender_auth: str = "none"  # [smtp] sender_auth; another value wants a DNS server
    checkpoint_interval: float | None = None  # [archive]; None: the gateway's default


async def start_target(name: str, harness: Harness, setup: GatewaySetup) -> Server:
    if name == "postfix":
        return await _postfix(harness)
    if name == "sink":
        return await _bare_sink(harness)
    if name == "gateway-sqlite":
        return await _gateway(harness, setup, f"sqlite:///{harness.workdir / 'gateway.db'}")
    if name == "gateway-postgresql":
        url = harness.stack.enter_context(postgres_schema(setup.postgres_dsn))
        server = await _gateway(harness, setup, url)
        server.database_pid = await asyncio.to_thread(postmaster_pid, setup.postgres_dsn)
        return server
    raise ValueError(f"unknown target {name!r}")


def postfix_missing() -> str | None:
    """Why Postfix cannot be measured here; None when it can."""
    if private_postfix.POSTFIX is None:
        return "Postfix is not installed"
    if os.geteuid() != 0:
        return "Postfix's master must be started as root"
    return None


async def final_sink(harness: Harness) -> tuple[int, SinkCounter]:
    port = free_port()
    child, counter = await start_smtp_sink("smtp-sink", port, harness.workdir / "smtp-sink.log")
    harness.children.append(child)
    harness.stack.push_async_callback(ensure_stopped, child)
    await wait_listening(child, port)
    return port, counter


async def _postfix(harness: Harness) -> Server:
    missing = postfix_missing()
    if missing:
        raise BenchError(missing)
    sink_port, counter = await final_sink(harness)
    port = free_port()
    # Blocking for the second or two Postfix takes to start; nothing else runs meanwhile.
    instance = harness.stack.enter_context(
        private_postfix.running_postfix(
            harness.workdir / "postfix", port=port, relay_to=(LOOPBACK, sink_port)
        )
    )
    pid_file = instance.folder / "spool" / "pid" / "master.pid"
    master = int(pid_file.read_text().split()[0])

    async def no_exit_status() -> None:
        return None  # `postfix stop` runs when the measurement's stack closes

    def delivery_statuses() -> dict[str, object]:
        """Postfix's own account, from its log: deliveries by status (sent, deferred...)."""
        return {"maillog_status": dict(Counter(MAILLOG_STATUS.findall(instance.log())))}

    return Server(port, ALIAS_LIKE, master, counter, no_exit_status, delivery_statuses)


async def _bare_sink(harness: Harness) -> Server:
    child, port, _ = await harness.sink("sink")
    arrivals = ArrivalLines(harness.workdir / "sink.arrivals")

    async def stop_sink() -> int | None:
        return await stop(child, SINK_STOP_TIMEOUT)

    return Server(port, ALIAS_LIKE, child.pid, arrivals, stop_sink)


async def _gateway(harness: Harness, setup: GatewaySetup, database_url: str) -> Server:
    sink_port, counter = await final_sink(harness)
    smtp_port = free_port()
    config = harness.workdir / "gateway.toml"
    config.write_text(gateway_config(database_url, smtp_port, sink_port, setup), "utf-8")
    command = [gateway_command(), "--config", str(config)]
    (route,) = await register(command, pairs=1)
    gateway = await harness.spawn("gateway", [*command, "serve"], smtp_port)

    async def stop_gateway() -> int | None:
        return await stop(gateway, GATEWAY_STOP_TIMEOUT)

    def log_details() -> dict[str, object]:
        count, first = log_problems(gateway.log_path)
        return {"log_problem_count": count, "log_problems": first}

    return Server(smtp_port, route.rcpt, gateway.pid, counter, stop_gateway, log_details)


def gateway_config(
    database_url: str,
    smtp_port: int,
    sink_port: int,
    setup: GatewaySetup,
    dns_port: int | None = None,
) -> str:
    """The gateway's config file; `dns_port`: a DNS server on loopback for the MX path's
    SPF and DKIM look-ups."""
    text = GATEWAY_CONFIG.format(
        # json.dumps quotes a string the way TOML's basic strings want it.
        database_url=json.dumps(database_url),
        smtp_port=smtp_port,
        grace=GATEWAY_SHUTDOWN_GRACE,
        sender_auth=setup.sender_auth,
        max_sessions=setup.most_sessions,
        max_commands=max(setup.most_messages + 10, 500),
        transport=json.dumps(f"smtp://{LOOPBACK}:{sink_port}"),
    )
    # Written only when asked for: a gateway without the key refuses it as unknown.
    if setup.processes is not None:
        text += SERVER_SECTION.format(processes=setup.processes)
    if setup.checkpoint_interval is not None:
        text += ARCHIVE_SECTION.format(interval=setup.checkpoint_interval)
    if dns_port is not None:
        text += DNS_SECTION.format(host=LOOPBACK, port=dns_port)
    return text


def postmaster_pid(dsn: str) -> int | None:
    """The PostgreSQL server's parent process, if it runs on this machine and tells us where
    its data directory is (a superuser can); None otherwise."""
    with psycopg.connect(dsn, connect_timeout=5) as connection:
        row = connection.execute("SHOW data_directory").fetchone()
    try:
        return int((Path(row[0]) / "postmaster.pid").read_text().split()[0]) if row else None
    except (OSError, ValueError, IndexError):
        return None
