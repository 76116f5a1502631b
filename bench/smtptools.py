"""Postfix's test programs, driven from asyncio: smtp-sink as the final sink that counts
arrivals, smtp-source as the load.

Arrivals at smtp-sink: it runs with -c, which writes its counters ("sess=S quit=Q mesg=M",
each update ended by a carriage return) to stdout every time a session ends, a QUIT is
executed or a message's final "." is received, and flushes them at once. The counter is read
from a pipe as it comes; the time of an arrival is when its update was read. smtp-sink
itself keeps nothing of the messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.procs import LOOPBACK, ROOT, Child, clean_env, start
from bench.sink import clock

SMTP_SOURCE = "/usr/sbin/smtp-source"
SMTP_SINK = "/usr/sbin/smtp-sink"
SINK_USER = "nobody"  # smtp-sink started as root must drop to a user (its -u)
SINK_BACKLOG = "256"
CLIENT_HOSTNAME = "client.bench.test"  # smtp-source's HELO name

_MESSAGES = re.compile(rb"mesg=(\d+)")
_COUNTER = re.compile(rb"(\d+)\r")


def messages_counted(output: bytes) -> int | None:
    """The latest `mesg=` counter in smtp-sink's -c output; None if there is none."""
    found = _MESSAGES.findall(output)
    return int(found[-1]) if found else None


@dataclass
class SinkCounter:
    """Arrivals at one smtp-sink: how many, and when the count last went up."""

    count: int = 0
    last_arrival: float | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _reader: asyncio.Task[None] | None = None

    def follow_in_background(self, stream: asyncio.StreamReader) -> None:
        """Follow the counters in a task of its own, which ends when `stream` closes."""
        self._reader = asyncio.create_task(self.follow(stream))

    async def follow(self, stream: asyncio.StreamReader) -> None:
        """Read the counters until smtp-sink's stdout closes."""
        tail = b""
        while chunk := await stream.read(65536):
            now = clock()
            # Keep a partial update for the next read; whole updates end with "\r".
            tail += chunk
            complete, _, tail = tail.rpartition(b"\r")
            count = messages_counted(complete)
            if count is not None and count > self.count:
                self.count, self.last_arrival = count, now
                self._changed.set()

    async def wait_for(self, expected: int) -> None:
        """Until `expected` messages have arrived; the caller bounds the wait."""
        while self.count < expected:
            self._changed.clear()
            await self._changed.wait()


async def start_smtp_sink(name: str, port: int, log_path: Path) -> tuple[Child, SinkCounter]:
    """smtp-sink on 127.0.0.1:`port`, its counters followed; stderr goes to `log_path`."""
    with log_path.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            SMTP_SINK,
            "-c",
            "-u",
            SINK_USER,
            f"{LOOPBACK}:{port}",
            SINK_BACKLOG,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
            cwd=ROOT,
            env=clean_env(),
        )
    counter = SinkCounter()
    assert process.stdout is not None
    counter.follow_in_background(process.stdout)
    return Child(name, process, log_path), counter


@dataclass(frozen=True, slots=True)
class SourceRun:
    """What smtp-source reported: messages whose DATA completed, its exit status, and
    whatever it printed other than its counter (errors)."""

    completed: int
    exit_code: int | None
    errors: list[str]


def source_argv(
    port: int,
    message_file: Path,
    *,
    messages: int,
    sessions: int,
    reuse: bool,
    sender: str,
    recipient: str,
) -> list[str]:
    """smtp-source sending `messages` copies of `message_file` over `sessions` parallel
    sessions; with `reuse` (-d) each session sends message after message, otherwise each
    session carries one message and the next one connects anew."""
    return [
        SMTP_SOURCE,
        "-c",  # a counter of completed DATA commands on stdout
        *(["-d"] if reuse else []),
        "-s",
        str(sessions),
        "-m",
        str(messages),
        "-M",
        CLIENT_HOSTNAME,
        "-f",
        sender,
        "-t",
        recipient,
        "-F",
        str(message_file),
        f"inet:{LOOPBACK}:{port}",
    ]


def read_source_log(path: Path) -> tuple[int, list[str]]:
    """The last counter value and the other lines of smtp-source's output."""
    text = path.read_bytes()
    counters = _COUNTER.findall(text)
    others = _COUNTER.sub(b"", text).decode(errors="replace").splitlines()
    return (int(counters[-1]) if counters else 0), [line for line in others if line.strip()]


async def run_source(name: str, argv: Sequence[str], log_path: Path) -> SourceRun:
    """Run smtp-source to its end (the caller bounds the time; it is killed on the way out)."""
    child = await start(name, argv, log_path)
    try:
        exit_code = await child.process.wait()
    finally:
        if child.process.returncode is None:
            child.process.kill()
            with contextlib.suppress(ProcessLookupError):
                await child.process.wait()
    completed, errors = read_source_log(log_path)
    return SourceRun(completed, exit_code, errors)
