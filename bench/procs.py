"""The benchmark's subprocesses: start them, wait until they listen, measure, stop them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.sink import clock

ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"
CLI_TIMEOUT = 60.0  # seconds for one registry command


class BenchError(RuntimeError):
    """The benchmark cannot go on; the text says what failed."""


@dataclass
class Child:
    """A long-running subprocess with its output in a log file."""

    name: str
    process: asyncio.subprocess.Process
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_path.exists():
            return ""
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])


def clean_env() -> dict[str, str]:
    """The environment without BSM_* variables: only the benchmark's config file counts."""
    return {key: value for key, value in os.environ.items() if not key.startswith("BSM_")}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


async def start(name: str, argv: Sequence[str], log_path: Path) -> Child:
    with log_path.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            cwd=ROOT,
            env=clean_env(),
        )
    return Child(name, process, log_path)


async def wait_listening(child: Child, port: int, within: float = 30.0) -> None:
    """Return once `port` greets with 220; fail if the child dies or `within` seconds pass."""
    deadline = clock() + within
    while clock() < deadline:
        if child.process.returncode is not None:
            raise BenchError(
                f"{child.name} exited with {child.process.returncode} before listening:\n"
                + child.log_tail()
            )
        if await _greets(port):
            return
        await asyncio.sleep(0.05)
    raise BenchError(f"{child.name} not listening on {port} after {within:.0f} s")


async def _greets(port: int) -> bool:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(LOOPBACK, port), 2)
    except (OSError, TimeoutError):
        return False
    try:
        greeting = await asyncio.wait_for(reader.readline(), 2)
        writer.write(b"QUIT\r\n")
        await writer.drain()
        return greeting.startswith(b"220")
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def stop(child: Child, grace: float) -> int | None:
    """SIGTERM and wait; SIGKILL after `grace` seconds. The exit status; None if killed."""
    process = child.process
    if process.returncode is not None:
        return process.returncode
    process.send_signal(signal.SIGTERM)
    try:
        return await asyncio.wait_for(process.wait(), grace)
    except TimeoutError:
        process.kill()
        await process.wait()
        return None


async def ensure_stopped(child: Child) -> None:
    """Clean-up on every path out, an aborted run included."""
    await stop(child, grace=10)


async def cli_json(argv: Sequence[str]) -> dict[str, Any]:
    """Run a `bsm-gateway ... --json` command; its one JSON object."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        "--json",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env=clean_env(),
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), CLI_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise BenchError(f"{' '.join(argv[1:])}: no answer after {CLI_TIMEOUT:.0f} s") from None
    if process.returncode != 0:
        raise BenchError(
            f"{' '.join(argv[1:])} exited with {process.returncode}: "
            + (out + err).decode(errors="replace").strip()
        )
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


def log_problems(path: Path, limit: int = 20) -> tuple[int, list[str]]:
    """Lines of a JSON-lines log at warning level or above, or not JSON at all (tracebacks):
    how many, and the first `limit` of them."""
    if not path.exists():
        return 0, []
    problems = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            level = json.loads(line).get("level", "")
        except (ValueError, AttributeError):
            level = "unparsed"
        if level not in ("debug", "info"):
            problems.append(line)
    return len(problems), problems[:limit]
