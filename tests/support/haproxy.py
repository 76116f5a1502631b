"""A private HAProxy (Debian's haproxy) in TCP mode on a loopback port, in front of a
gateway, as an operator's load balancer: it passes each client's address on in a PROXY
header and checks the gateway's health with SMTP. The system's HAProxy is not touched."""

from __future__ import annotations

import csv
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.databases import IN_CI
from tests.support.sink import free_port

HAPROXY = shutil.which("haproxy", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")

CONFIG = """\
global
  stats socket {folder}/admin.sock mode 600 level admin
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend mx
  bind 127.0.0.1:{port}
  default_backend gateway
backend gateway
  option smtpchk EHLO balancer.example
  server gateway 127.0.0.1:{backend} {send_proxy} check inter 200ms source {source}
"""


def require_haproxy() -> str:
    """Skip without HAProxy on a developer machine; in CI that is a failure."""
    if HAPROXY is None:
        missing = "HAProxy is not installed (Debian: haproxy)"
        if IN_CI:
            pytest.fail(f"{missing}; CI must run the load balancer's tests")
        pytest.skip(missing)
    return HAPROXY


@dataclass(frozen=True)
class Balancer:
    port: int
    folder: Path

    def server_status(self) -> str:
        """What HAProxy's health check makes of the gateway: UP, DOWN, or on its way."""
        with socket.socket(socket.AF_UNIX) as admin:
            admin.settimeout(5)
            admin.connect(str(self.folder / "admin.sock"))
            admin.sendall(b"show stat\n")
            answer = b""
            while chunk := admin.recv(65536):
                answer += chunk
        rows = csv.DictReader(answer.decode().lstrip("# ").splitlines())
        return next(row["status"] for row in rows if row["svname"] == "gateway")

    @property
    def log(self) -> str:
        return (self.folder / "haproxy.log").read_text(errors="replace")


@contextmanager
def balancer(
    folder: Path, backend_port: int, *, version: int = 2, source: str = "127.0.0.1"
) -> Iterator[Balancer]:
    """HAProxy forwarding 127.0.0.1:<its port> to the gateway's port, connecting from
    `source`, each connection prefixed with a PROXY header of `version` (1 or 2)."""
    haproxy = require_haproxy()
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = folder / "haproxy.cfg"
    config.write_text(
        CONFIG.format(
            folder=folder,
            port=port,
            backend=backend_port,
            send_proxy="send-proxy-v2" if version == 2 else "send-proxy",
            source=source,
        )
    )
    with (folder / "haproxy.log").open("wb") as log:
        process = subprocess.Popen([haproxy, "-db", "-f", str(config)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 20
        while True:
            with suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"HAProxy did not start:\n{Balancer(port, folder).log}")
            time.sleep(0.05)
        yield Balancer(port, folder)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
