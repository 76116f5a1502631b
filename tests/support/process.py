"""The bsm-gateway command as operators run it: real subprocesses, a real port, real signals."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from tests.support.gateway import Parties, write_config
from tests.support.sink import free_port

# The console script installed next to the interpreter running the tests (.venv/bin).
BSM_GATEWAY = str(Path(sys.executable).with_name("bsm-gateway"))


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any BSM_* variable of the caller's, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BSM_")}
    env.update(extra)
    return env


def process_config(
    folder: Path, database_url: str, transport: str, port: int, content_policy: Path | None = None
) -> Path:
    """The test config (tests.support.gateway.write_config) with a fixed SMTP port: port 0
    cannot be discovered from outside the process."""
    path = write_config(folder, database_url, transport, content_policy=content_policy)
    text = path.read_text()
    assert "\nport = 0\n" in text
    path.write_text(text.replace("\nport = 0\n", f"\nport = {port}\n", 1))
    return path


def run_cli(
    config: Path | None, *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    command = [BSM_GATEWAY, *(["--config", str(config)] if config else []), *args]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env if env is not None else clean_env(),
        check=False,
    )


def one_json_object(stdout: str) -> dict[str, Any]:
    """stdout must be exactly one JSON object (on one line)."""
    lines = stdout.splitlines()
    assert len(lines) == 1, f"expected one line of JSON on stdout, got {stdout!r}"
    value = json.loads(lines[0])
    assert isinstance(value, dict), f"expected a JSON object, got {lines[0]!r}"
    return value


def cli_json(config: Path, *args: str) -> dict[str, Any]:
    """Run a --json command that must succeed; its one JSON object."""
    result = run_cli(config, *args, "--json")
    assert result.returncode == 0, (
        f"bsm-gateway {' '.join(args)} exited {result.returncode}: "
        f"stdout={result.stdout!r} stderr={result.stderr!r}"
    )
    return one_json_object(result.stdout)


def register_with_cli(
    config: Path,
    *,
    shop: str = "Sakura Shop",
    seller: str = "owner@sakura-shop.example",
    buyer: str = "kim.buyer@buyer-mail.example",
) -> Parties:
    seller_id = cli_json(config, "seller", "add", shop, "--mailbox", seller)["seller_id"]
    buyer_id = cli_json(config, "buyer", "add", buyer)["buyer_id"]
    order = cli_json(config, "order", "add", "--seller", str(seller_id), "--buyer", str(buyer_id))
    return Parties(
        seller_id=seller_id,
        buyer_id=buyer_id,
        seller_mailbox=seller,
        buyer_address=buyer,
        buyer_alias=order["buyer_alias"],
        seller_alias=order["seller_alias"],
        pair_id=order["pair_id"],
    )


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class Serve:
    """One `bsm-gateway --config FILE serve` process; its stderr goes to a file."""

    def __init__(self, config: Path, port: int, log: Path, env: dict[str, str] | None = None):
        self.config = config
        self.port = port
        self.log = log
        self._log_file = log.open("wb")
        # A process group of its own: serve may run several processes, and "the gateway"
        # is all of them, as a container or a service manager sees it.
        self.process = subprocess.Popen(
            [BSM_GATEWAY, "--config", str(config), "serve"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._log_file,
            env=env if env is not None else clean_env(),
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, timeout: float = 30) -> None:
        """Until the listener accepts connections (and the process is still alive)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                raise AssertionError(f"serve exited with {code} at start:\n{self.stderr()}")
            if port_open(self.port):
                return
            time.sleep(0.05)
        raise AssertionError(f"serve did not listen on {self.port} in {timeout}s:\n{self.stderr()}")

    def signal(self, signum: signal.Signals) -> None:
        """SIGKILL kills every process of the gateway at once, as a crash of the machine
        or a container runtime would; other signals go to serve, which passes them on."""
        if signum == signal.SIGKILL:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signum)
        else:
            os.kill(self.process.pid, signum)

    def wait(self, timeout: float) -> int:
        """serve's exit code, once it and every process it started have ended."""
        deadline = time.monotonic() + timeout
        code = self.process.wait(timeout)
        while self.group_alive():
            if time.monotonic() > deadline:
                raise AssertionError(f"processes of serve still running after {timeout}s")
            time.sleep(0.02)
        return code

    def group_alive(self) -> bool:
        try:
            os.killpg(self.process.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def stop(self) -> int:
        """SIGTERM, as an orchestrator stops it; the exit code."""
        if self.process.poll() is None:
            self.signal(signal.SIGTERM)
        return self.wait(30)

    def kill(self) -> None:
        if self.process.poll() is None or self.group_alive():
            self.signal(signal.SIGKILL)
        self.wait(30)

    def close(self) -> None:
        self.kill()
        self._log_file.close()

    def stderr(self) -> str:
        self._log_file.flush()
        return self.log.read_text(encoding="utf-8", errors="replace")


@contextmanager
def serving(config: Path, port: int, folder: Path, name: str = "serve") -> Iterator[Serve]:
    """A started serve process, killed at the end if the test left it running."""
    index = len(list(folder.glob(f"{name}-*.log")))
    process = Serve(config, port, folder / f"{name}-{index}.log")
    try:
        process.wait_ready()
        yield process
    finally:
        process.close()


def serving_processes(serve: Serve) -> int:
    """How many processes serve runs its listeners in: its workers, or itself alone."""
    records = json_log_lines(serve.stderr())
    started = [r for r in records if r.get("event") == "started" and "processes" in r]
    return int(started[0]["processes"]) if started else 1


def reserve_port() -> int:
    """A port that was free a moment ago (bind to 0, close)."""
    return free_port()


def json_log_lines(stderr: str) -> list[dict[str, Any]]:
    """Every line of a serve process's stderr, each of which must be a JSON object."""
    records = []
    for number, line in enumerate(stderr.splitlines(), 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise AssertionError(f"stderr line {number} is not JSON: {line!r}") from None
        assert isinstance(record, dict), f"stderr line {number} is not an object: {line!r}"
        records.append(record)
    return records


def addresses_in_log(stderr: str, addresses: list[str]) -> list[str]:
    """The lines that name any of `addresses` (case-insensitively)."""
    wanted = [a.lower() for a in addresses]
    return [line for line in stderr.splitlines() if any(a in line.lower() for a in wanted)]
